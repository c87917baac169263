"""`python -m services.aggregator`: run one aggregator worker."""

from services.aggregator.service import main

if __name__ == "__main__":
    main()
