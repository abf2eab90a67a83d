"""Every workaround that lets megatron-core run on a CPU-only torch (gloo), in one place.

`apply()` is idempotent and does nothing when CUDA is available: production runs take megatron's
own GPU code paths untouched. No megatron file is edited; each patch swaps one symbol and names
the call site that fails without it (seen with megatron-core 0.16.1 and 0.19.2, torch 2.13 CPU).

| patch            | what fails without it                                                        |
|---|---|
| triton_shim | 0.19.x: `import megatron.core` imports triton unconditionally (MoE paged stash) |
| rng_tracker | `tensor_parallel.random`: torch.cuda.get_rng_state / tracker add/fork |
| current_device | RoPE inv_freq, global memory buffer, p2p and DDP buffers use current_device() |
| causal_mask | `get_default_causal_mask` hard-codes device="cuda" (attention_mask=None) |
| cuda_factories | device="cuda" tensor factories in schedules, optimizer, DDP buffers, utils |
| cuda_stubs | torch.cuda streams and synchronize: dist_checkpointing, DDP grad sync, MoE alltoall |
| uneven_collectives | expert-TP gather, reduce-scatter of unequal token blocks (gloo: equal only) |
| moe_host_splits | MoE alltoall split sizes: only CUDA ones become numpy; gloo refuses tensors |
| cuda_tensor_type | clip_grads / optimizer init assert `.type() == 'torch.cuda.FloatTensor'` |
| tensor_cuda | `Tensor.cuda()` in distributed-optimizer checkpoint exchange |

Two more are not about failures but about cost (about 3 s of every process's start):

- eager_fusions: `import megatron.core` decorates its fusion kernels with torch.compile, whose
  first call imports dynamo and inductor (about 1.3 s). On the CPU every fusion is off
  (`hf_config.transformer_config`); the few kernels the CPU path calls (MoE routing) run eager
  instead of being compiled by inductor.
- fork_results_queue: dist_checkpointing's save collects its writers' results through a
  `Manager` started with spawn, a fresh interpreter (about 1.5 s at a process's first save).
  Spawn guards against forking a process that holds CUDA state; a CPU-only one holds none, and
  megatron forks its writer processes anyway.

Tested by every test under tests/distributed/ (megatron-core on gloo, no CUDA), e.g.
tests/distributed/test_train.py and tests/distributed/test_verify.py.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import sys
import types

import torch

APPLIED: list[str] = []
_done = False

# Modules whose `torch.<factory>(..., device="cuda")` calls are redirected to the CPU.
_CUDA_FACTORY_MODULES = (
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.distrib_optimizer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.distributed.finalize_model_grads",
    "megatron.core.utils",
)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def apply() -> list[str]:
    """Apply every CPU patch once (no-op with CUDA). Call before building megatron objects."""
    global _done
    if _done or cuda_available():
        return APPLIED
    _done = True
    _install_triton_shim()
    _import_megatron_with_eager_fusions()
    _patch_rng_tracker()
    _patch_current_device()
    _patch_causal_mask()
    _patch_cuda_factories()
    _patch_cuda_stubs()
    _patch_moe_host_splits()
    _patch_uneven_collectives()
    _patch_cuda_tensor_type()
    _patch_tensor_cuda()
    _fork_checkpoint_results_queue()
    return APPLIED


def _install_triton_shim() -> None:
    # megatron-core 0.19.x: megatron/core/transformer/moe/ops/paged_stash.py does a bare
    # `import triton`, reached from `import megatron.core` via pipeline_parallel/schedules.py.
    # Register a stand-in for that one module (its kernels only serve MoE paged stash). A fake
    # top-level `triton` would NOT work: torch._inductor would then believe triton is usable.
    name = "megatron.core.transformer.moe.ops.paged_stash"
    if importlib.util.find_spec("triton") is not None or name in sys.modules:
        return

    def _unavailable(*args, **kwargs):
        raise RuntimeError("MoE paged stash needs triton and CUDA")

    class _Kernel:
        def __getitem__(self, grid):
            return _unavailable

        __call__ = staticmethod(_unavailable)

    stub = types.ModuleType(name)
    stub.GLOBAL_BLOCK_SIZE = 1024
    stub.paged_stash_copy_kernel = _Kernel()
    stub.paged_stash_pop_kernel = _Kernel()
    sys.modules[name] = stub
    APPLIED.append("triton_shim")


def _eager(fn=None, **options):
    """torch.compile's two call forms (`torch.compile(fn)`, `@torch.compile(mode=...)`), eager."""
    return fn if fn is not None else (lambda inner: inner)


def _import_megatron_with_eager_fusions() -> None:
    # megatron.core.jit sets jit_fuser = torch.compile and every fusion module binds it at import,
    # so torch.compile itself is swapped while megatron.core first imports; disable_jit_fuser
    # (megatron's own switch) covers the modules imported later (MoE router and dispatcher).
    if "megatron.core" in sys.modules:
        return
    real_compile = torch.compile
    torch.compile = _eager
    try:
        import megatron.core  # noqa: F401
        import megatron.core.jit as jit
    finally:
        torch.compile = real_compile
    jit.disable_jit_fuser()
    APPLIED.append("eager_fusions")


def _patch_rng_tracker() -> None:
    import megatron.core.tensor_parallel.random as mrandom

    def get_state(device="cuda", clone=False, graph_safe=False):
        return torch.get_rng_state()

    def set_state(new_state, device=-1, graph_safe=False):
        torch.set_rng_state(new_state)

    def add(self, name, seed):
        # Same bookkeeping as CudaRNGStatesTracker.add, on the CPU generator.
        if seed in self.seeds_:
            raise Exception(f"seed {seed} already exists")
        self.seeds_.add(seed)
        if name in self.states_:
            raise Exception(f"cuda rng state {name} already exists")
        saved = torch.get_rng_state()
        torch.manual_seed(seed)
        self.states_[name] = torch.get_rng_state()
        torch.set_rng_state(saved)

    mrandom._get_cuda_rng_state = get_state
    mrandom._set_cuda_rng_state = set_state
    mrandom.CudaRNGStatesTracker.add = add
    APPLIED.append("rng_tracker")


def _patch_current_device() -> None:
    torch.cuda.current_device = lambda: torch.device("cpu")
    APPLIED.append("current_device")


def _patch_causal_mask() -> None:
    import megatron.core.fusions.fused_softmax as fused_softmax
    import megatron.core.transformer.utils as transformer_utils

    @functools.lru_cache(maxsize=16)
    def causal_mask(sq: int) -> torch.Tensor:
        return torch.triu(torch.ones(sq, sq, dtype=torch.bool), diagonal=1)

    transformer_utils.get_default_causal_mask = causal_mask
    fused_softmax.get_default_causal_mask = causal_mask
    APPLIED.append("causal_mask")


class _CpuFactoryTorch:
    """Stands in for `torch` inside one megatron module: factories asked for a CUDA device get
    the CPU; every other attribute is the real torch."""

    _FACTORIES = frozenset(
        "zeros ones empty full tensor arange zeros_like ones_like empty_like full_like "
        "rand randn randint".split()
    )

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if name not in self._FACTORIES:
            return attr

        def factory(*args, **kwargs):
            device = kwargs.get("device")
            if device is not None and (isinstance(device, int) or str(device).startswith("cuda")):
                kwargs["device"] = "cpu"
            return attr(*args, **kwargs)

        return factory


def _patch_cuda_factories() -> None:
    for module_name in _CUDA_FACTORY_MODULES:
        importlib.import_module(module_name).torch = _CpuFactoryTorch(torch)
    APPLIED.append("cuda_factories")


class _NoEvent:
    def synchronize(self):
        pass

    def wait(self, *args, **kwargs):
        pass


class _NoStream:
    """The one stream of a CPU process: every stream megatron asks for or creates is it, so
    "am I on a side stream?" checks (MoE alltoall dispatcher) answer no."""

    def wait_event(self, *args, **kwargs):
        pass

    def wait_stream(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def record_event(self, *args, **kwargs):
        return _NoEvent()


_THE_STREAM = _NoStream()


class _StreamType:
    """Stands for `torch.cuda.Stream`: a class (annotations such as `torch.cuda.Stream | None`
    still evaluate) whose every construction is the one stream."""

    def __new__(cls, *args, **kwargs):
        return _THE_STREAM


def _patch_cuda_stubs() -> None:
    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.cuda.current_stream = lambda *args, **kwargs: _THE_STREAM
    torch.cuda.Stream = _StreamType
    torch.cuda.stream = lambda *args, **kwargs: contextlib.nullcontext()
    APPLIED.append("cuda_stubs")


def _patch_moe_host_splits() -> None:
    # The alltoall dispatcher turns its split sizes into numpy arrays with
    # `maybe_move_tensor_to_cpu(..., as_numpy=True)`, which converts CUDA tensors only;
    # all_to_all_single then refuses the CPU tensors it keeps.
    import megatron.core.transformer.moe.token_dispatcher as token_dispatcher

    def to_host(tensor, as_numpy: bool = False, record_stream: bool = False):
        if as_numpy and torch.is_tensor(tensor):
            return tensor.numpy()
        return tensor

    token_dispatcher.maybe_move_tensor_to_cpu = to_host
    APPLIED.append("moe_host_splits")


def _patch_uneven_collectives() -> None:
    # With expert tensor parallelism the alltoall dispatcher gathers (and its combine
    # reduce-scatters) token blocks of unequal sizes over the TP ranks; gloo's all_gather and
    # reduce_scatter take equal ones only. Same results: pad to the largest block and cut, or
    # all-reduce the whole input and keep this rank's block.
    import megatron.core.tensor_parallel.mappings as mappings

    gather, reduce_scatter = (
        mappings._gather_along_first_dim,
        mappings._reduce_scatter_along_first_dim,
    )

    def gather_uneven(input_, group, output_split_sizes=None, use_global_buffer=False):
        if output_split_sizes is None or group.size() == 1:
            return gather(input_, group, output_split_sizes, use_global_buffer)
        largest = max(output_split_sizes)
        padded = input_.new_zeros((largest, *input_.shape[1:]))
        padded[: input_.shape[0]] = input_
        blocks = [torch.empty_like(padded) for _ in output_split_sizes]
        torch.distributed.all_gather(blocks, padded.contiguous(), group=group)
        return torch.cat([b[:n] for b, n in zip(blocks, output_split_sizes)])

    def reduce_scatter_uneven(input_, group, input_split_sizes=None, use_global_buffer=False):
        if input_split_sizes is None or group.size() == 1:
            return reduce_scatter(input_, group, input_split_sizes, use_global_buffer)
        total = input_.contiguous().clone()
        torch.distributed.all_reduce(total, group=group)
        rank = torch.distributed.get_rank(group)
        start = sum(input_split_sizes[:rank])
        return total[start : start + input_split_sizes[rank]].contiguous()

    mappings._gather_along_first_dim = gather_uneven
    mappings._reduce_scatter_along_first_dim = reduce_scatter_uneven
    APPLIED.append("uneven_collectives")


def _patch_cuda_tensor_type() -> None:
    import megatron.core.optimizer.clip_grads as clip_grads
    import megatron.core.optimizer.distrib_optimizer as distrib_optimizer
    import megatron.core.optimizer.optimizer as optimizer

    real_type = torch.Tensor.type

    def cuda_named_type(self, *args, **kwargs):
        out = real_type(self, *args, **kwargs)
        if (
            not args
            and not kwargs
            and out.startswith("torch.")
            and not out.startswith("torch.cuda")
        ):
            return "torch.cuda." + out[len("torch.") :]
        return out

    @contextlib.contextmanager
    def cuda_typed():
        torch.Tensor.type = cuda_named_type
        try:
            yield
        finally:
            torch.Tensor.type = real_type

    def wrap(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with cuda_typed():
                return fn(*args, **kwargs)

        return wrapped

    clipped = wrap(clip_grads.clip_grad_by_total_norm_fp32)
    clip_grads.clip_grad_by_total_norm_fp32 = clipped
    optimizer.clip_grad_by_total_norm_fp32 = clipped
    for cls, name in (
        (distrib_optimizer.DistributedOptimizer, "_build_model_and_main_param_groups"),
        (distrib_optimizer.DistributedOptimizer, "__init__"),
        (optimizer.Float16OptimizerWithFloat16Params, "__init__"),
    ):
        raw = cls.__dict__[name]
        if isinstance(raw, staticmethod):
            setattr(cls, name, staticmethod(wrap(raw.__func__)))
        elif isinstance(raw, classmethod):
            setattr(cls, name, classmethod(wrap(raw.__func__)))
        else:
            setattr(cls, name, wrap(raw))
    APPLIED.append("cuda_tensor_type")


def _patch_tensor_cuda() -> None:
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    APPLIED.append("tensor_cuda")


def _fork_checkpoint_results_queue() -> None:
    import multiprocessing

    import megatron.core.dist_checkpointing.strategies.filesystem_async as filesystem_async

    def results_queue():
        # Same lazily created, process-wide queue as megatron's, from a forked manager.
        if filesystem_async._results_queue is None:
            manager = multiprocessing.get_context("fork").Manager()
            filesystem_async._results_queue = manager.Queue()
        return filesystem_async._results_queue

    filesystem_async._get_write_results_queue = results_queue
    APPLIED.append("fork_results_queue")
