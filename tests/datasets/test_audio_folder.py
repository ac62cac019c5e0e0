import numpy as np
import pytest
from kedro.io import DatasetError

from bark_kedro.audio.io import write_audio_atomic
from bark_kedro.datasets.audio_folder import AudioFolderDataset


def wav(path, rate: int = 24_000):
    return str(write_audio_atomic(path, np.zeros(rate // 10, dtype=np.float32), rate))


def test_save_checks_the_index_and_load_lists_whole_files(tmp_path):
    folder = tmp_path / "audio_24k"
    folder.mkdir()
    index = {"a": wav(folder / "a.1.wav"), "b": wav(folder / "b.2.wav")}
    (folder / ".c.3.wav.123-abc.tmp").write_bytes(b"half")  # an interrupted write
    dataset = AudioFolderDataset(str(folder), 24_000)
    dataset.save(index)
    assert dataset.exists()
    assert dataset.load() == {"a.1": index["a"], "b.2": index["b"]}


def test_save_names_a_file_outside_the_folder_or_at_another_rate(tmp_path):
    folder = tmp_path / "audio_24k"
    folder.mkdir()
    dataset = AudioFolderDataset(str(folder), 24_000)
    elsewhere = wav(tmp_path / "x.wav")
    with pytest.raises(DatasetError, match="'x'.*not in the catalog's audio folder"):
        dataset.save({"x": elsewhere})
    with pytest.raises(DatasetError, match="'y'.*16000 Hz"):
        dataset.save({"y": wav(folder / "y.wav", 16_000)})
    (folder / "z.wav").write_bytes(b"RIFF not a wav")
    with pytest.raises(DatasetError, match="'z'.*not a readable WAV"):
        dataset.save({"z": str(folder / "z.wav")})


def test_load_of_a_missing_folder_says_to_ingest(tmp_path):
    dataset = AudioFolderDataset(str(tmp_path / "none"), 16_000)
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="run ingest"):
        dataset.load()
