"""`python -m services.ingestor`: run the ingestor service."""

from services.ingestor.service import main

if __name__ == "__main__":
    main()
