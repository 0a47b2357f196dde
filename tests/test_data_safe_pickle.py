"""Untrusted pickles: only dataset-shaped content loads; anything else is refused before it runs."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest

from metantk_nas.data import safe_pickle
from metantk_nas.data.fixtures import write_rfs_mini_fixture
from metantk_nas.data.readers import RFS_MINI_FILES, convert


class _Payload:
    """Unpickling this calls os.system(command): the classic pickle exploit."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"data": _Payload(f"touch {marker}"), "labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match=r"evil.pickle: refused to load the global (posix|os|nt)\.system"):
        safe_pickle.load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: the plain unpickler does run the payload
    assert marker.exists()


def test_malicious_dataset_file_fails_the_conversion(tmp_path):
    marker = tmp_path / "pwned"
    root = tmp_path / "root"
    write_rfs_mini_fixture(root)
    evil = {"data": np.zeros((32, 84, 84, 3), np.uint8), "labels": _Payload(f"touch {marker}")}
    (root / "miniImageNet" / RFS_MINI_FILES["test"]).write_bytes(pickle.dumps(evil, protocol=4))
    with pytest.raises(ValueError, match="refused"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        convert("rfs-mini", root, tmp_path / "store")
    assert not marker.exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("global_name", ["builtins.eval", "subprocess.Popen", "numpy.load", "builtins.getattr"])
def test_other_globals_are_refused(global_name):
    module, name = global_name.rsplit(".", 1)
    data = f"c{module}\n{name}\n(S'1'\ntR.".encode()  # protocol 0: GLOBAL, MARK, STRING, TUPLE, REDUCE
    with pytest.raises(ValueError, match=rf"refused to load the global {global_name}"):
        safe_pickle.loads(data, source="crafted")


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_dataset_content_loads_at_every_protocol(protocol):
    payload = {"data": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), "labels": [3, 4],
               "scalar": np.int64(7), "names": ("a", b"b"), "f": 1.5}
    loaded = safe_pickle.loads(pickle.dumps(payload, protocol=protocol))
    np.testing.assert_array_equal(loaded["data"], payload["data"])
    assert loaded["data"].dtype == np.uint8
    assert loaded["labels"] == [3, 4] and loaded["scalar"] == 7 and loaded["names"] == ("a", b"b")


def test_python2_strings_follow_the_encoding():
    data = b"\x80\x02}q\x00U\x06labelsq\x01]q\x02K\x01as."  # py2 protocol 2: {'labels': [1]} with a py2 str key
    assert safe_pickle.loads(data, encoding="latin1") == {"labels": [1]}
    assert safe_pickle.loads(data, encoding="bytes") == {b"labels": [1]}


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"data": np.zeros(100)}, protocol=2)[:40])
    with pytest.raises(ValueError, match=r"cut.pkl: not a readable pickle"):
        safe_pickle.load(path)
    with pytest.raises(FileNotFoundError, match=r"nothere.pkl: file not found"):
        safe_pickle.load(tmp_path / "nothere.pkl")
