"""`python -m services.extractor`: run the extractor service."""

from services.extractor.service import main

if __name__ == "__main__":
    main()
