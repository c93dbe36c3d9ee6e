"""The third target, per_token_group_quant_fp8 (declared in pyproject.toml, semantics in
docs/token-group-quantizer.md): its candidates bit-exact with the oracle on the CPU here, through the C
kernel itself (not its fallback), and on CUDA through the Triton kernel."""

import pytest
import torch

from candidates import _token_group_cpu
from candidates.token_group_fused import token_group_fused
from candidates.token_group_vectorized import token_group_vectorized
from harness.core import values
from harness.core.target import get_target
from oracles.token_group_reference import per_token_group_quant_fp8_slow as oracle
from tests.conftest import cuda

TARGET = get_target("per_token_group_quant_fp8")
CASES = [(tokens, groups, group, dtype, family) for tokens, groups, group in ((1, 1, 128), (3, 7, 64), (33, 56, 128))
         for dtype in ("bfloat16", "float16", "float32") for family in ("randn", "huge", "tiny", "subnormal", "zeros")]


def _same(a, b) -> bool:
    return all(x.dtype == y.dtype and x.shape == y.shape and torch.equal(x.view(torch.uint8), y.view(torch.uint8))
               for x, y in zip(a, b))


def test_the_c_kernel_is_built_here():
    assert _token_group_cpu.load() is not None, "no C compiler: the fused candidate would test its fallback only"


@pytest.mark.parametrize("tokens, groups, group, dtype, family", CASES)
@pytest.mark.parametrize("candidate", [token_group_fused, token_group_vectorized], ids=lambda f: f.__name__)
def test_bit_exact_with_the_oracle_on_the_cpu(candidate, tokens, groups, group, dtype, family):
    x = values.fill(family, (tokens, groups * group), dtype, seed=tokens + groups)
    assert _same(candidate(x, group), oracle(x, group))


def test_a_float16_groups_nan_scale_is_the_one_its_float32_values_give():
    """The amax of a float16 group is taken on its float32 bits, so a group holding a signalling NaN (0x7C01,
    0x7FC02000 once widened) and a quiet one (0x7E00, 0x7FC00000) gets the same NaN scale bits as the same
    values given as float32; an amax on the float16 bits would pick the other NaN."""
    halves = torch.zeros(2, 128, dtype=torch.int16)
    halves[:, :3] = torch.tensor([0x7C01, 0x7E00, 0x3C00], dtype=torch.int16)
    halves[1, :2] = torch.tensor([0x7E00, 0x7C01], dtype=torch.int16)
    x16 = halves.view(torch.float16)

    def scale_bits(x):
        codes, scales = torch.empty(x.shape, dtype=torch.uint8), torch.empty(x.shape[0], 1)
        _token_group_cpu.quantize(x, 128, 1e-10, codes, scales)
        return scales.view(torch.int32).flatten().tolist(), codes

    (bits16, codes16), (bits32, codes32) = scale_bits(x16), scale_bits(x16.float())
    assert bits16 == bits32 == [0x7FC02000, 0x7FC02000]
    assert torch.equal(codes16, codes32)


def test_the_declared_target_says_what_it_moves():
    size = TARGET.parse_size("4096x7168")
    assert TARGET.case_bytes(size) == 4096 * 7168 * (2 + 1) + 4096 * 56 * 4  # bf16 in, fp8 codes + f32 scales out
    assert TARGET.policies == ("exact",) and TARGET.function_name == "per_token_group_quant_fp8"


def test_preconditions_are_the_oracles():
    x = torch.zeros(2, 100, dtype=torch.bfloat16)
    for fn in (oracle, token_group_fused, token_group_vectorized):
        with pytest.raises(AssertionError):
            fn(x, 128)


@cuda
@pytest.mark.parametrize("tokens, groups, group, dtype, family", CASES)
def test_the_triton_kernel_is_bit_exact_with_the_oracle_on_cuda(tokens, groups, group, dtype, family):
    from candidates import _token_group_triton

    x = values.fill(family, (tokens, groups * group), dtype, seed=tokens + groups, device="cuda")
    assert _token_group_triton.supports(x)
    assert _same(token_group_fused(x, group), oracle(x, group))
