import mlflow
import pytest
from kedro.io import DatasetError

from bark_kedro.datasets.mlflow_tags import MlflowTagsDataset


@pytest.mark.slow
def test_tags_go_to_the_active_run_only(mlflow_db, caplog):
    dataset = MlflowTagsDataset(prefix="tok.")
    with caplog.at_level("INFO"):
        dataset.save({"codec_weights": "random"})  # no run: skipped, said so
    assert "not recorded" in caplog.text and dataset.load() == {}
    mlflow.set_tracking_uri(mlflow_db)
    try:
        with mlflow.start_run() as run:
            dataset.save({"codec_weights": "random", "layer": 9})
            assert dataset.load() == {"tok.codec_weights": "random", "tok.layer": "9"}
        tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
        assert tags["tok.codec_weights"] == "random" and tags["tok.layer"] == "9"
    finally:
        mlflow.set_tracking_uri(None)
    with pytest.raises(DatasetError, match="dict of tags"):
        dataset.save(["random"])
