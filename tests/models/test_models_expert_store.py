"""The expert store: round trip, missing/corrupt/truncated files, cache bound, LRU order, memory probe."""

import json

import numpy as np
import pytest

from moe_lib.experiments import p1_experiments as ex
from moe_lib.experiments import p1_store_probe as probe
from moe_lib.models import expert_store as es


@pytest.fixture
def store(tmp_path):
    experts = list(probe.random_experts(2, 9, 5, 3, seed=1))
    es.write_store(tmp_path, experts, n=2, cells_per_axis=3, experts_per_file=4)
    return tmp_path, experts


def test_round_trip_and_same_outputs(store):
    d, experts = store
    man = es.read_manifest(d)
    assert man["n_experts"] == 9 and man["experts_per_file"] == 4
    for k in (0, 4, 8):
        ws, bs = es.load_expert(d, k, man)
        for a, b in zip(ws + bs, experts[k][0] + experts[k][1], strict=True):
            assert np.array_equal(a, b)
    x = np.random.default_rng(0).random((200, 2))
    x[:3] = [[1.0, 1.0], [0.0, 0.0], [1 / 3, 2 / 3]]
    cells = es.grid_cells(x, 2, 3)
    ref = np.stack([es.mlp_forward(*experts[c], x[i:i + 1].astype(np.float32))[0]
                    for i, c in enumerate(cells)])
    st = es.ExpertStore(d, cache_size=2)
    full = es.InMemoryMoMLP.from_store(d)
    for chunk in (None, 7, 1):
        assert np.allclose(st.forward(x, chunk=chunk), ref, atol=1e-6)
    assert np.allclose(full(x), ref, atol=1e-6)
    assert full.nbytes == 9 * probe.expert_parameters(2, 5, 3) * 4
    assert list(cells[:3]) == [8, 0, 5]


def test_cache_bound_and_lru_order(store):
    d, _ = store
    st = es.ExpertStore(d, cache_size=3)
    for k in (0, 1, 2, 0, 3):
        st.expert(k)
        assert len(st.cached) <= 3
    assert st.cached == [2, 0, 3]          # 1 was least recently used
    assert (st.hits, st.misses) == (1, 4)
    st.expert(1)
    assert st.cached == [0, 3, 1]
    x = np.full((10, 2), 0.1)
    st.reset_stats()
    st.forward(x)
    assert st.misses == 0 and st.hits == 10   # expert 0 was cached
    assert st.hit_rate == 1.0


def test_missing_corrupt_truncated(store):
    d, _ = store
    st = es.ExpertStore(d, cache_size=1)
    (d / es.shard_file(2)).unlink()
    with pytest.raises(es.ExpertStoreError, match=r"expert 8: file .*experts_00002.safetensors is missing"):
        st.expert(8)
    p = d / es.shard_file(1)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(es.ExpertStoreError, match=r"expert 5: file .*experts_00001.safetensors is corrupt"):
        st.expert(5)
    p0 = d / es.shard_file(0)
    p0.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(es.ExpertStoreError, match="experts_00000.safetensors"):
        st.expert(0)


def test_wrong_tensors_and_manifest(tmp_path):
    es.write_store(tmp_path, probe.random_experts(1, 2, 3, 2, 0), 1, 2, experts_per_file=1)
    man = json.loads((tmp_path / es.MANIFEST).read_text())
    man["shapes"]["w0"] = [1, 4]
    (tmp_path / es.MANIFEST).write_text(json.dumps(man))
    with pytest.raises(es.ExpertStoreError, match="expert 1: .*tensor e00001.w0 has shape"):
        es.ExpertStore(tmp_path).expert(1)
    (tmp_path / es.MANIFEST).write_text("{")
    with pytest.raises(es.ExpertStoreError, match="manifest .* is corrupt"):
        es.ExpertStore(tmp_path)


def test_store_bad_inputs(store, tmp_path):
    d, _ = store
    with pytest.raises(ValueError, match="cache_size"):
        es.ExpertStore(d, cache_size=0)
    with pytest.raises(ValueError, match="at most 9 experts"):
        es.ExpertStore(d, cells_per_axis=4)
    with pytest.raises(ValueError, match=r"x: expected finite points in \[0,1\]"):
        es.ExpertStore(d).forward(np.array([[0.5, 1.5]]))
    with pytest.raises(ValueError, match="expected cells_per_axis"):
        es.write_store(tmp_path / "x", probe.random_experts(2, 3, 4, 2, 0), 2, 2)
    with pytest.raises(es.ExpertStoreError, match="manifest"):
        es.ExpertStore(tmp_path / "nowhere")


def test_memory_probe_child(store):
    d, _ = store
    a = probe.measure(d, 3, "store", cache=2, batch=64, chunk=16)
    b = probe.measure(d, 3, "memory", batch=64, chunk=16)
    assert a["n_experts"] == 9 and a["peak_rss_mb"] > 0 and 0 <= a["hit_rate"] <= 1
    assert a["checksum"] == pytest.approx(b["checksum"], rel=1e-6)
    assert a["peak_rss_mb"] < 200   # a bare numpy interpreter, no torch


def test_experiment_helpers():
    x = ex.grid_points(2, 3)
    assert x.shape == (9, 2) and x.max() == 1.0
    tr, te = ex.split(10, 0)
    assert len(te) == 2 and set(tr) | set(te) == set(range(10)) and not set(tr) & set(te)
    assert ex.baseline_width(4 * 33, 2, 1) == 33
    assert np.allclose(ex.target("f_z", np.array([[0.1, 0.1]])), 0.0)
    lo, hi = ex.bootstrap_median_interval([1.0, 2.0, 3.0])
    assert 1.0 <= lo <= hi <= 3.0
    with pytest.raises(ValueError, match="target"):
        ex.target("f_q", x)
