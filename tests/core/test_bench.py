import numpy as np
import pytest
import torch
from torch import nn

from deblurstudio.core import bench


def test_flops_of_a_convolution_are_two_per_multiply_add():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    flops = bench.count_flops(conv, torch.rand(1, 4, 16, 16))
    assert flops == 2 * 4 * 8 * 9 * 16 * 16


def test_peak_memory_sees_a_temporary_allocation():
    with bench.PeakMemory(torch.device("cpu")) as peak:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    if peak.bytes is None:
        pytest.skip("no /proc peak-memory readings on this system")
    assert 48 * 2**20 < peak.bytes < 512 * 2**20


def test_bench_model_measures_a_model_and_tabulates_it(tiny_models):
    result = bench.bench_model("lcnet", device="cpu", megapixels=0.01, repeats=1)
    assert result.arch == "lcnet" and result.device == "cpu"
    assert abs(result.width * result.height - 10_000) < 200
    assert result.megapixels_per_second > 0 and result.megapixels_per_second_with_maps > 0
    assert result.tile_flops > 0 and 0 < result.matmul_ratio
    assert result.tile % 8 == 0 and result.tile >= max(result.width, result.height)
    table = bench.format_table([result])
    assert "lcnet" in table and "MP/s +maps" in table.splitlines()[0]
