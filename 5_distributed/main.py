"""Stage 5 -- many processes: chapter 3's model trained data-parallel on torch.distributed.

What changes from stage 3: not the model, the data order, the initial weights or Adam -- the
model is chapter 3's own, imported -- but who computes a step. N processes (ranks) each take
their share of the step's B documents, run the forward and backward on it with the loss
weighted so that the shares add up to the step's loss, and add their gradients with one
all-reduce; then every rank takes the same Adam step, so every rank holds the same weights.
--mode chooses who does the communication: by hand (one all_reduce of one flat buffer),
DistributedDataParallel, ZeRO by hand (Adam's moments sharded: reduce-scatter, each rank its
shard, all-gather), ZeroRedundancyOptimizer, or FSDP2's fully_shard. On a laptop the processes
talk through gloo over TCP; on GPUs through NCCL (README.md, "The same command on GPUs").

Run:  torchrun --standalone --nproc-per-node 2 5_distributed/main.py --batch-size 6     (2 processes, gloo)
      python 5_distributed/main.py --nproc-per-node 2 --batch-size 6       (the same, launched by launch.py)
      python 5_distributed/main.py --batch-size 6 --dtype float64          (1 process: chapter 3's run)
      python 5_distributed/main.py --nproc-per-node 3 --batch-size 6 --mode zero --accumulate 2
"""

import contextlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for shared/ and chapter 3
from shared import program, runner  # noqa: E402, F401  (program first: load-time errors in one line)
from shared.dataset import step_documents  # noqa: E402
from shared.keep import keep  # noqa: E402
from tools import stages  # noqa: E402  (a chapter's main.py as a module: SPEC.md, "Every main.py")

# isort: split
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.fsdp import fully_shard  # noqa: E402
from torch.distributed.optim import ZeroRedundancyOptimizer  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

# isort: split
import launch  # noqa: E402  (this folder's launcher: what torchrun does, and a lost rank in one line)

chapter3 = stages.load("3_pytorch")  # GPT, load_weights, make_optimizer, sample: chapter 3's, unchanged

MODES = ("hand", "ddp", "zero", "zero-torch", "fsdp")  # who communicates: see each class below

# Shapes in comments: P = 4,192 parameters, N ranks (the world size), r this rank, B documents
# in a step, T positions (the longest document of a share), V = vocab_size.


# ----------------------------------------------------------------------------------------
# Autograd: chapter 3's torch.autograd; each rank differentiates its share of the loss
# ----------------------------------------------------------------------------------------

# Nothing new to write. A rank's backward fills its parameters' .grad with the gradient of its
# share of the loss; since the step's loss is the sum of the shares, the step's gradient is the
# sum of the ranks' gradients (README.md, "Why the sum of shares is the big batch").


# ----------------------------------------------------------------------------------------
# Parameters: the same initial weights on every rank, the gradients in one flat buffer
# ----------------------------------------------------------------------------------------

def flat_views(model: torch.nn.Module, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, grads): two flat buffers of `length` >= P numbers that every parameter and its
    .grad are views into, in SPEC.md's order (the numbers after the P-th are for the caller: a
    slot for the loss, or padding to whole shards). Backward adds into the views in place, so
    the gradients are the flat buffer: one collective sends them all, as DDP's buckets do (its
    gradient_as_bucket_view)."""
    params = list(model.parameters())
    weights = torch.zeros(length, dtype=params[0].dtype, device=params[0].device)
    grads = torch.zeros_like(weights)
    offset = 0
    for p in params:
        n = p.numel()
        weights[offset:offset + n].copy_(p.detach().flatten())
        p.data = weights[offset:offset + n].view_as(p)
        p.grad = grads[offset:offset + n].view_as(p)
        offset += n
    return weights, grads


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_identical(weights: torch.Tensor, step: int) -> None:
    """Every rank's weights, bit for bit: an all-gather of two integer checksums of their bits
    (their sum and their sum weighted by position, which a swap of two numbers changes), 16
    bytes from each rank in place of P numbers. A bug raises here, not steps later."""
    bits = weights.view(torch.int64) if weights.element_size() == 8 else weights.view(torch.int32).long()
    position = torch.arange(1, len(bits) + 1, device=bits.device)
    checksum = torch.stack([bits.sum(), (bits * position).sum()])  # int64 sums wrap around: still exact
    every = [torch.empty_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(every, checksum)
    differ = [rank for rank, other in enumerate(every) if not torch.equal(other, every[0])]
    if differ:
        raise RuntimeError(f"after step {step + 1} the weights of rank(s) {differ} differ from rank 0's "
                           f"(checksums {[c.tolist() for c in every]}): the ranks no longer train one model")


# ----------------------------------------------------------------------------------------
# Model: chapter 3's GPT, and who adds the ranks' gradients
# ----------------------------------------------------------------------------------------

# Each class below is one way to turn N ranks' gradients into one Adam step on one set of
# weights. All have the same parts, used in this order every step (train, below):
#   model          what the forward runs through (chapter 3's GPT, or PyTorch's wrapper of it)
#   loss_scale     what the backward multiplies the loss by: 1 where gradients are summed,
#                  N where PyTorch averages them (divides their sum by N), so that both add up
#   no_sync()      a micro-step (--accumulate) that only adds into .grad, with no communication
#   reduce(loss)   the gradients summed over ranks, and the step's loss summed from its shares
#   step()         Adam: the same step on every rank, or each rank on its own shard (ZeRO)
#   gather()       ZeRO by hand: the updated shards, from every rank to every rank


class ByHand:
    """Data parallelism by hand: one all_reduce (SUM) of one flat buffer [gradients | loss]
    carries both the step's gradient and its loss to every rank; then chapter 3's Adam, the same
    on every rank, keeps the weights identical."""

    loss_scale = 1

    def __init__(self, model, run):
        self.model = model
        _, self.buffer = flat_views(model, num_params(model) + 1)  # (P + 1,): the gradients, then the loss
        self.optimizer, self.schedule = chapter3.make_optimizer(model, run.num_steps, run.device)

    def no_sync(self):
        return contextlib.nullcontext()  # nothing is sent before reduce(): every micro-step only adds

    def reduce(self, loss):
        self.buffer[-1] = loss  # this rank's share of the step's loss
        dist.all_reduce(keep("all_reduce", self.buffer))  # SUM over ranks, in place: (P + 1,) numbers
        return self.buffer[-1].clone()  # (the buffer is zeroed after the step)

    def step(self):
        self.optimizer.step()
        self.schedule.step()
        self.buffer.zero_()  # (not zero_grad(set_to_none=True): the .grad views must stay views)

    def gather(self):
        pass  # every rank updated every weight


class DDP:
    """PyTorch's DistributedDataParallel: hooks on the backward start an all-reduce of each bucket
    of gradients as soon as the bucket is full, while backward goes on computing the rest. It
    averages (sums, then divides by N), so the loss is scaled by N; it does not reduce the loss."""

    def __init__(self, model, run, bucket_cap_mb: float = 25):
        self.loss_scale = dist.get_world_size()
        self.model = DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb, gradient_as_bucket_view=True)
        self.optimizer, self.schedule = chapter3.make_optimizer(model, run.num_steps, run.device)

    def no_sync(self):
        return self.model.no_sync()  # micro-steps keep their gradients local; the last one syncs

    def reduce(self, loss):
        dist.all_reduce(loss)  # the gradients were reduced inside backward; the loss is ours to add
        return loss

    def step(self):
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=False)

    def gather(self):
        pass  # every rank updated every weight (ZeroRedundancyOptimizer: its step broadcast them)


class ZeroByHand(ByHand):
    """ZeRO (stage 1) by hand: the flat gradients are reduce-scattered, so rank r receives the sum
    of shard r alone (P / N numbers); it keeps Adam's two moments for that shard only and updates
    that shard of the weights; an all-gather puts the N updated shards back together on every
    rank. The same bytes as one all-reduce, and 1/N of Adam's memory."""

    def __init__(self, model, run):
        self.model, world, rank = model, dist.get_world_size(), dist.get_rank()
        size = -(-num_params(model) // world)  # S = ceil(P / N): each rank's shard
        self.weights, self.grads = flat_views(model, world * size)  # (N * S,) each: P, then zeros
        shards = torch.nn.ParameterList([self.weights[rank * size:(rank + 1) * size].clone()])
        self.shard = shards[0]  # (S,): the weights this rank updates
        self.shard.grad = torch.zeros_like(self.shard)  # (S,): the sum of the ranks' gradients for them
        self.optimizer, self.schedule = chapter3.make_optimizer(shards, run.num_steps, run.device)

    def reduce(self, loss):
        dist.reduce_scatter_single(self.shard.grad, self.grads)  # SUM of shard r, to rank r alone
        dist.all_reduce(loss)
        return loss

    def step(self):
        self.optimizer.step()  # Adam on S numbers, with moments for them alone
        self.schedule.step()
        self.grads.zero_()

    def gather(self):
        dist.all_gather_single(self.weights, self.shard.detach())  # (N * S,): every rank's shard, to every rank


class ZeroTorch(DDP):
    """PyTorch's ZeroRedundancyOptimizer over DDP: DDP all-reduces the gradients, and each rank
    runs Adam on the parameters it owns (whole matrices, assigned by size), then broadcasts them."""

    def __init__(self, model, run):
        super().__init__(model, run)
        self.optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam,
                                                 **adam_settings(self.optimizer))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1 - step / run.num_steps)


class FSDP(DDP):
    """FSDP2's fully_shard (ZeRO stage 3): each rank holds a shard of every matrix; the forward
    all-gathers a module's weights before it runs, the backward reduce-scatters its gradients
    (averaged, as DDP), and Adam updates each rank's shards. Every block is its own unit."""

    def __init__(self, model, run):
        self.loss_scale = dist.get_world_size()
        mesh = init_device_mesh(run.device.type, (dist.get_world_size(),))  # the ranks, in one row
        for block in model.layers:
            fully_shard(block, mesh=mesh)
        self.model = fully_shard(model, mesh=mesh)
        optimizer, _ = chapter3.make_optimizer(model, run.num_steps, run.device)
        settings = {**adam_settings(optimizer), "fused": False, "foreach": True}  # (no fused Adam on DTensors)
        self.optimizer = torch.optim.Adam(model.parameters(), **settings)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1 - step / run.num_steps)

    @contextlib.contextmanager
    def no_sync(self):
        self.model.set_requires_gradient_sync(False)
        yield
        self.model.set_requires_gradient_sync(True)


PARALLEL = {"hand": ByHand, "ddp": DDP, "zero": ZeroByHand, "zero-torch": ZeroTorch, "fsdp": FSDP}


def views_like(model, buffer: torch.Tensor) -> list[torch.Tensor]:
    """Views into `buffer`, one shaped like each parameter of `model`, in order."""
    views, offset = [], 0
    for p in model.parameters():
        views.append(buffer[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return views


def whole_weights(model) -> torch.Tensor:
    """The model's weights as one flat tensor (P,), on every rank; FSDP's shards gathered first."""
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
    return torch.cat([p.detach().flatten() for p in full])


def unsharded(model, config) -> "chapter3.GPT":
    """A plain GPT with the trained weights, for sampling: the model itself, or FSDP's gathered."""
    if not hasattr(model.wte.weight, "full_tensor"):
        return model
    plain = chapter3.GPT(config).to(device=model.wte.weight.device, dtype=model.wte.weight.dtype)
    for p, w in zip(plain.parameters(), views_like(plain, whole_weights(model))):
        p.data.copy_(w)
    return plain


# ----------------------------------------------------------------------------------------
# Optimizer: chapter 3's Adam; ZeRO keeps it for a shard
# ----------------------------------------------------------------------------------------

def adam_settings(optimizer: torch.optim.Optimizer) -> dict:
    """Chapter 3's Adam constants, read from its optimizer, for PyTorch's wrappers to build their own."""
    group = optimizer.param_groups[0]
    return {key: group[key] for key in ("lr", "betas", "eps", "fused", "foreach")}


def adam_state_bytes(parallel) -> int:
    """The bytes this rank's Adam keeps (its two moments and step counts): N times less under ZeRO."""
    optimizer = getattr(parallel.optimizer, "optim", parallel.optimizer)  # (ZeroRedundancyOptimizer's own Adam)
    tensors = [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    local = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]  # (FSDP: this rank's shard)
    return sum(t.numel() * t.element_size() for t in local)


# ----------------------------------------------------------------------------------------
# Training: each rank its share of the step, one reduction, the same Adam step everywhere
# ----------------------------------------------------------------------------------------

def share(rows: list[int], part: int, parts: int) -> list[int]:
    """Slice `part` of `parts` nearly equal slices of `rows`, in order: sizes differ by at most one
    (6 documents over 4 ranks: 1, 2, 1, 2)."""
    return rows[part * len(rows) // parts:(part + 1) * len(rows) // parts]


def forward_backward(model, inputs, targets, weight: float, scale: float, phase) -> torch.Tensor:
    """This share's part of the step's loss (its value), with its gradient added into .grad.
    `weight` = the share's target positions / the step's: chapter 3's loss is the mean over the
    share's positions, and weighted so, the shares' losses add up to the mean over the step's."""
    with phase("forward"):
        loss = model(inputs, targets)[1] * weight  # (): this share's part of the step's mean
    with phase("backward"):
        (loss * scale).backward()  # scale: N where PyTorch divides the summed gradients by N
    return loss.detach()


def train(run) -> "chapter3.GPT":
    """Train from SPEC.md's initial weights on this rank's shares of every step; every rank returns
    the same trained model (checked). `run` is this rank's (shared/runner.py); rank 0's is written."""
    rank, world = dist.get_rank(), dist.get_world_size()
    model = chapter3.load_weights(chapter3.GPT(run.config).to(getattr(torch, run.dtype)), run.initial_weights)
    parallel = PARALLEL[run.args.mode](model.to(run.device), run)
    inputs, targets, lengths = chapter3.tokenized_documents(run)  # (D, T), (D, T), D: every document, padded
    for step in run.steps():
        rows = step_documents(range(len(lengths)), step, run.batch_size)  # the step's B documents (SPEC.md)
        positions = sum(lengths[row] for row in rows)  # the step's real targets: its loss is their mean
        loss = 0.0
        for micro in range(run.args.accumulate):  # --accumulate k: k micro-batches, one after another
            mine = share(share(rows, micro, run.args.accumulate), rank, world)  # this rank's documents
            T = max(lengths[row] for row in mine)
            with contextlib.nullcontext() if micro == run.args.accumulate - 1 else parallel.no_sync():
                loss += forward_backward(parallel.model, inputs[mine, :T], targets[mine, :T],
                                         sum(lengths[row] for row in mine) / positions, parallel.loss_scale,
                                         run.phase)
        with run.phase("communication"):
            loss = parallel.reduce(loss)  # the step's gradient and loss, summed over the ranks
        with run.phase("optimizer"):
            parallel.step()  # the same Adam step on every rank (ZeRO: each rank on its shard)
        with run.phase("communication"):
            parallel.gather()  # ZeRO: every rank's updated shard to every rank (else nothing to do)
        if run.args.check_weights:
            check_identical(whole_weights(model), step)
        run.end_step(loss)
    check_identical(whole_weights(model), run.steps_to_train - 1)  # always, once, at the end
    run.note(world_size=world, mode=run.args.mode, adam_state_bytes=adam_state_bytes(parallel))  # (rank 0's is kept)
    return unsharded(model, run.config)


# ----------------------------------------------------------------------------------------
# Sampling: chapter 3's, on rank 0
# ----------------------------------------------------------------------------------------

sample = chapter3.sample  # every rank holds the same weights; rank 0 draws the names


# ----------------------------------------------------------------------------------------
# Command line: shared/runner.py reads the flags and the data; launch.py starts the ranks
# ----------------------------------------------------------------------------------------

def add_flags(parser) -> None:
    parser.add_argument("--mode", choices=MODES, default="hand",
                        help="who adds the ranks' gradients: by hand (one all_reduce), DistributedDataParallel, "
                             "ZeRO by hand (reduce-scatter, a shard of Adam, all-gather), ZeroRedundancyOptimizer, "
                             "or FSDP2's fully_shard")
    parser.add_argument("--accumulate", type=int, default=1,
                        help="micro-batches per step: each rank runs k forwards and backwards and communicates once")
    parser.add_argument("--check-weights", action="store_true",
                        help="check after every step that every rank holds the same weights, bit for bit (one "
                             "more all-gather per step; without it, once at the end)")
    parser.add_argument("--nproc-per-node", type=int, default=None,
                        help="start this many processes here, as torchrun --standalone does (not under torchrun)")
    parser.add_argument("--master-port", type=int, default=0,
                        help="the TCP port of rank 0's rendezvous (0: a free one)")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds a rank waits for the others in a collective before it gives up")


def check_flags(args) -> str | None:
    """Usage errors, one line each: every rank needs a document of every micro-batch."""
    launched = int(os.environ.get("WORLD_SIZE", 0))  # the world torchrun (or launch.py) started
    if args.nproc_per_node is not None and args.nproc_per_node < 1:
        return f"--nproc-per-node must be at least 1, got {args.nproc_per_node}"
    if launched and args.nproc_per_node not in (None, launched):
        return (f"--nproc-per-node {args.nproc_per_node} asks for processes, but a launcher already started "
                f"{launched}; give the count to one of them")
    if args.accumulate < 1 or args.timeout <= 0 or not 0 <= args.master_port < 2**16:
        return (f"--accumulate must be positive, --timeout above 0 and --master-port 0 to 65535; got "
                f"{args.accumulate}, {args.timeout} and {args.master_port}")
    world = launched or args.nproc_per_node or 1
    smallest = args.batch_size // args.accumulate  # the documents of the smallest micro-batch
    if smallest < world:
        if args.accumulate > 1:
            return (f"{world} processes share micro-batches of {smallest} documents (--batch-size {args.batch_size}"
                    f" --accumulate {args.accumulate}): a process would have none; use --batch-size "
                    f"{world * args.accumulate} or more, or --accumulate {max(1, args.batch_size // world)} or less")
        return (f"{world} processes share a batch of {args.batch_size} document{'s' * (args.batch_size > 1)}: a "
                f"process would have none; use "
                f"--batch-size {world} or more, or at most {args.batch_size} process{'es' * (args.batch_size > 1)}")
    return None


# --dtype float32 (default) or float64; --device, --threads; and this stage's flags above
FLAGS = runner.Flags(dtypes=("float32", "float64"), device=runner.torch_device, extra=add_flags, check=check_flags)

if __name__ == "__main__":
    launch.main(__file__, FLAGS, train, sample)  # rank 0 hands train and sample to shared/runner.py
