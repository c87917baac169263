"""`make train` is reproducible: training from the committed corpus and configuration gives
the committed artefact byte for byte (so also its held-out scores). Slow (minutes): it parses
every training article."""

from pathlib import Path

from services.extractor.model import PartnershipModel, default_model_path
from services.extractor.training.train import train


def test_training_reproduces_the_shipped_model(tmp_path: Path) -> None:
    out = tmp_path / "model.json.gz"
    result = train(out)
    shipped = PartnershipModel.load(default_model_path())
    assert result["version"] == shipped.version
    assert out.read_bytes() == default_model_path().read_bytes()
    # what the artefact records of its training is what the run reported
    assert shipped.meta["trained_on"] == result["trained_on"]
    assert shipped.meta["cross_validation"] == result["cross_validation"]
