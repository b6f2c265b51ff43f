"""The Space refuses bad input with one message and no server-side traceback, never hands the teacher a missing
language, and does not fill the temporary folder with batch result files."""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

import pytest

from tests.space_fixtures import TRAINED_STUDENT

pytestmark = pytest.mark.slow


def _client(url: str):  # noqa: ANN202 - gradio_client.Client, imported late (it is slow to import)
    from gradio_client import Client

    return Client(url, verbose=False)


def test_no_language_means_the_spaces_only_language(served_space: str, capfd: pytest.CaptureFixture[str]) -> None:
    client = _client(served_space)
    *outputs, summary, _ = client.predict("The national team won the football match.", None, api_name="/classify")
    rows = {row[0]: row for row in summary["data"]}
    assert rows["teacher"][3] and rows[TRAINED_STUDENT][3]  # both gave a label
    assert not any("NoneType" in str(row[-1]) for row in summary["data"])
    table, _, notice = client.predict("The minister resigned after the election.", None, None,
                                      api_name="/classify_batch")
    assert "NoneType" not in notice and table["data"][0][1] == "en"
    assert "Traceback" not in capfd.readouterr().err


def test_refused_inputs_leave_no_traceback(served_space: str, tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = _client(served_space)
    capfd.readouterr()
    with pytest.raises(AppError, match="Type a text"):
        client.predict("  ", "en", api_name="/classify")
    with pytest.raises(AppError, match="This Space covers en, not 'xx'"):
        client.predict("A sentence about football.", "xx", api_name="/classify")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text\nUn match de football à Montréal.\n".encode("latin-1"))
    with pytest.raises(AppError, match="Cannot read the CSV file .*save it as UTF-8 CSV"):
        client.predict("", handle_file(str(latin1)), "en", api_name="/classify_batch")
    with pytest.raises(AppError, match="one text per line"):
        client.predict("  \n", None, "en", api_name="/classify_batch")
    assert "Traceback" not in capfd.readouterr().err


def test_batch_calls_do_not_pile_up_files(served_space: str) -> None:
    from hfsynth.space.app import KEPT_DOWNLOADS

    system_temp = set(glob.glob(str(Path(tempfile.gettempdir()) / "predictions-*.csv")))
    client = _client(served_space)
    for index in range(KEPT_DOWNLOADS + 3):
        client.predict(f"Sentence number {index} about the election.", None, "en", api_name="/classify_batch")
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "predictions-*.csv"))) == system_temp
    for folder in glob.glob(str(Path(tempfile.gettempdir()) / "hfsynth-space-*")):
        assert len(list(Path(folder).glob("predictions-*.csv"))) <= KEPT_DOWNLOADS
