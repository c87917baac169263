"""spaCy components of the extractor, one module per factory. Importing this package
registers the factories (as spaCy's own `spacy.pipeline` does) and declares the extensions.

- `radar_paragraphs` (paragraphs.py): a paragraph break ends a sentence.
- `radar_companies` (companies.py): company mentions beyond the statistical NER, with their
  canonical names as of the article's date -> `doc.spans["companies"]`, `span._.company`.
- `radar_candidates` (candidates.py): candidate party sets per cue sentence, with the
  features the trained models read -> `doc._.candidates`.
- `radar_partnerships` (partnerships.py): the trained models decide which candidates are
  partnerships and at what stage -> `doc._.partnerships`.

Components exchange state only through the extensions declared in `extensions.py`.
"""

from services.extractor.components import (  # noqa: F401  (registers the factories)
    candidates,
    companies,
    extensions,
    paragraphs,
    partnerships,
)
