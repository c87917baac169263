"""Building the labelled corpus and training the extractor's models (not imported by the service)."""
