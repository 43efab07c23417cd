"""A run records a fingerprint of its data; a resume on changed data (a class renamed, two
class folders swapped, an image deleted or replaced, a class added) is refused in one line that
says what changed, with nothing in the run folder touched; --allow-data-change goes on and
records the change."""

from __future__ import annotations

import json
import os

import pytest
from helpers import ON, make_folder, write_png

from cnnzoo.cli.main import main
from cnnzoo.train.fingerprint import DATA_FILE

pytestmark = pytest.mark.usefixtures("one_thread")


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_resume_on_changed_data_is_refused_and_says_what_changed(tmp_path, capsys):
    data = tmp_path / "data"
    for c, name in enumerate(("cat", "dog", "owl")):
        for i in range(10):
            write_png(data / name / f"{i:03d}.png", 60 * c + i)
    run = tmp_path / "run"
    args = [*ON, str(data), "--out", str(run), "--epochs", "2", "--stop-after", "1",
            "--val-split", "0.2"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((run / DATA_FILE).read_text())["fingerprint"]["classes"] == [
        "cat", "dog", "owl"]  # fmt: skip
    resume = ["train", "--resume", str(run), "--no-progress"]

    def refused(why: str) -> None:
        before = files_of(run)
        capsys.readouterr()
        assert main(resume) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "the data changed" in err[0] and why in err[0], err
        assert files_of(run) == before

    os.rename(data / "cat", data / "cat2")  # a renamed class: label indices would shift
    refused("removed or renamed 'cat'")
    os.rename(data / "cat2", data / "cat")
    os.rename(data / "cat", data / "tmp")  # two class folders swapped
    os.rename(data / "dog", data / "cat")
    os.rename(data / "tmp", data / "dog")
    refused("images changed in class 'cat'")
    os.rename(data / "dog", data / "tmp")
    os.rename(data / "cat", data / "dog")
    os.rename(data / "tmp", data / "cat")
    write_png(data / "eel" / "000.png", 7)  # a class added
    refused("added 'eel'")
    for i in range(1, 5):  # accepted, it is still refused by the state (another head size):
        write_png(data / "eel" / f"{i:03d}.png", 7 + i)
    before = files_of(run)
    assert main([*resume, "--allow-data-change"]) == 2
    assert files_of(run) == before  # data.json records a change only once the state loads
    for p in (data / "eel").iterdir():
        p.unlink()
    (data / "eel").rmdir()
    victim = sorted((data / "owl").iterdir())[0]
    victim.unlink()  # an image deleted
    refused("'owl'")
    write_png(victim, 99)  # ... and another in its place
    refused("'owl'")
    assert main([*resume, "--allow-data-change"]) == 0
    record = json.loads((run / DATA_FILE).read_text())
    assert len(record["accepted_changes"]) == 1 and "owl" in record["accepted_changes"][0]["change"]
    config = json.loads((run / "config.json").read_text())
    assert config["allow_data_change"] is True  # recorded; the next resume must say it again


def test_unchanged_data_resumes(tmp_path):
    data = make_folder(tmp_path / "data", per_class=10)
    run = tmp_path / "run"
    args = [*ON, str(data), "--out", str(run), "--epochs", "2", "--stop-after", "1",
            "--val-split", "0.2"]  # fmt: skip
    assert main(args) == 0
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
