import os
import pickle

import numpy as np
import pytest

from facegraph.errors import InputError
from facegraph.io.safe_pickle import load_array_pickle


def test_reads_dicts_of_numpy_arrays(tmp_path):
    path = tmp_path / "stats.pkl"
    path.write_bytes(pickle.dumps({"mean": np.arange(3.0), "std": np.ones(3, np.float32)}))
    loaded = load_array_pickle(path)
    assert loaded["mean"].tolist() == [0.0, 1.0, 2.0] and loaded["std"].dtype == np.float32


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_a_pickle_that_would_run_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"mean": _Exploit()}))
    with pytest.raises(InputError, match="refusing to load"):
        load_array_pickle(path)


def test_missing_and_garbage_files_are_user_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_array_pickle(tmp_path / "none.pkl")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="not a pickle"):
        load_array_pickle(tmp_path / "bad.pkl")
