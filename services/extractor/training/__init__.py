"""Building the labelled corpus and training the extractor's models (never imported by the
service)."""
