"""Private Set Generation (PSG; Chen, Kerkouche, Fritz, NeurIPS 2022): gradient matching in which only the real-data
gradient touches private data, and that gradient is privatised as in DP-SGD (`jaxdistill.privacy`).

One outer iteration (`step`), following the reference code (DingfanChen/Private-Set, main.py): a fresh randomly
initialised network; then `outer_loop` times: `batch_loop` matches, each of which draws one Poisson-sampled,
mixed-class batch of real images (each training image in with probability q = batch_real / N), computes its gradient
privately (per-example gradients, each clipped to L2 norm `clip_norm` as one flat vector, summed, Gaussian noise of
std noise_multiplier x clip_norm added, divided by the expected batch size q N), and matches it against the gradient
of the *whole* synthetic set (every class, in one cross-entropy) with DC's layer-wise distance; the images take one
SGD step (lr 0.1, momentum 0.5) per match. Between outer loops (not after the last) the network trains `inner_loop`
epochs on the synthetic set (post-processing: no privacy cost). (outer_loop, inner_loop) follow DC's table by ipc.
The paper's Algorithm 1 describes per-class matching; its code matches one mixed batch against the whole set, and we
follow the code, whose accounting (one Poisson-sampled query per match) is the one its numbers were computed with.

Privacy. Each match is one query of the Poisson-sampled Gaussian mechanism; a run of `iterations` iterations makes
iterations x outer_loop x batch_loop of them, all accounted before the run starts: `prepare(plan)` calibrates the
noise multiplier to (epsilon, delta) with dp-accounting (RDP by default, PLD as an option) and returns the method to
run, whose `host_data` refuses any iteration beyond the plan. (The reference runs `iteration + 1` iterations while
accounting for `iteration`; we run and account the same number.) Anything else that would read private data is
refused: batch norm (its statistics mix examples), synthetic images initialised from real ones (PSG starts from
Gaussian noise, as the reference does) and ZCA whitening fitted on the training split. Normalisation uses the
dataset's fixed published mean and std (MNIST 0.1307 / 0.3081, as every MNIST pipeline hard-codes them; MHIST
ImageNet's), treated as public constants. epsilon = inf runs the same matching without clipping or noise, the
reference's non-private branch (a plain mean gradient of the Poisson batch).

The Poisson batch has a fixed maximum size (`privacy.poisson_batch`), chosen so that overflowing it adds at most
delta / 100 to delta (`privacy.overflow_delta`, included in the recorded guarantee).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill import policy, privacy
from jaxdistill.data.dsa import DSAParams, dsa_augment, parse_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill.methods import gradient_matching as gm
from jaxdistill.methods.base import Method, RunPlan, StepLoop, check_minimums, method, register_method
from jaxdistill.methods.dc import reference_loops
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ModelConfig
from jaxdistill.synthetic import INITS, SyntheticSet, init_synthetic
from jaxdistill.train import apply_model, cross_entropy, sgd_optimizer

OVERFLOW_SHARE = 0.01  # the share of delta an overflow of the fixed maximum batch may take
# Queries assumed when a method that `prepare` did not size its batch for picks the maximum batch itself
ASSUMED_QUERIES = 10**6


@dataclasses.dataclass(frozen=True)
class PSGConfig:
    ipc: int = 1
    epsilon: float = 10.0  # the target; math.inf: no privacy (no clipping, no noise)
    delta: float = 1e-5
    clip_norm: float = 0.1  # C, per example, over the whole flat gradient (the reference's max_norm)
    noise_multiplier: float | None = None  # sigma; None: calibrated by `prepare` to (epsilon, delta) for the run
    accountant: str = "rdp"  # 'rdp' or 'pld' (dp-accounting)
    batch_real: int = 256  # the expected size of a Poisson batch: q = batch_real / N
    max_batch: int | None = None  # the fixed maximum of a Poisson batch; None: chosen by `prepare`
    batch_loop: int = 10  # matches (real batches) per network state
    outer_loop: int | None = None  # None: from DC's table by ipc
    inner_loop: int | None = None
    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    batch_train: int = 256
    distance: str = "ours"  # the reference's 'gm': DC's layer-wise cosine distance
    model: ModelConfig = ModelConfig("convnet")  # instance norm: per example, so privacy-compatible
    dsa_strategy: str = "none"  # the reference's --method DSA sets one; 'none' is its default (DC)
    init: str = "noise"

    def __post_init__(self):
        object.__setattr__(self, "model", ModelConfig.parse(self.model))
        object.__setattr__(self, "epsilon", float(self.epsilon))
        check_minimums(self, ipc=1, outer_loop=1, inner_loop=0, batch_real=1, batch_train=1, batch_loop=1,
                       max_batch=1)
        if not self.epsilon > 0:
            raise privacy.PrivacyError(f"epsilon must be > 0 (inf for no privacy), got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise privacy.PrivacyError(f"delta must lie in (0, 1), got {self.delta}")
        if not self.clip_norm > 0:
            raise privacy.PrivacyError(f"clip_norm must be > 0, got {self.clip_norm}")
        if self.noise_multiplier is not None and not self.noise_multiplier >= 0:
            raise privacy.PrivacyError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.accountant not in privacy.ACCOUNTANTS:
            raise ConfigError(f"unknown accountant {self.accountant!r}; choose one of {', '.join(privacy.ACCOUNTANTS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.private and self.init != "noise":
            raise privacy.PrivacyError(f"init {self.init!r} copies private training images into the released set; "
                                       f"PSG starts from Gaussian noise (init 'noise')")
        if self.private and self.model.get("norm") == "batchnorm":
            raise privacy.PrivacyError(f"model {self.model} uses batch norm, whose statistics mix the private "
                                       f"examples of a batch; use instance norm (the ConvNet's default) or none")
        reference_loops(self.ipc, self.outer_loop, self.inner_loop)
        parse_dsa_strategy(self.dsa_strategy)
        get_gradient_distance(self.distance)

    @property
    def private(self) -> bool:
        return math.isfinite(self.epsilon)

    @property
    def loops(self) -> tuple[int, int]:
        return reference_loops(self.ipc, self.outer_loop, self.inner_loop)

    @property
    def queries_per_iteration(self) -> int:
        return self.loops[0] * self.batch_loop


class PSGState(NamedTuple):
    synthetic: SyntheticSet
    opt_state: optax.OptState  # the images' SGD momentum, kept across iterations
    iteration: jax.Array


class Carry(NamedTuple):
    synthetic: SyntheticSet
    opt_state: optax.OptState
    params: Any
    net_opt_state: optax.OptState
    loss_sum: jax.Array
    loop_key: jax.Array
    iteration: jax.Array


def private_gradient(clip_norm: float, noise_multiplier: float, expected_batch: float) -> gm.GradientFn:
    """The engine's real-gradient function of PSG: batch = (images, labels, mask, noise key) of a Poisson batch;
    per-example gradients, clipped, summed over the mask, noised, divided by `expected_batch`."""
    def gradient(net, params, batch_stats, batch):
        images, labels, mask, noise_key = batch

        def loss(p, example):
            x, y = example
            return cross_entropy(apply_model(net, p, batch_stats, x[None], False)[0], y[None])
        per_example = privacy.per_example_gradients(loss, params, (images, labels))
        return privacy.noisy_clipped_mean(per_example, mask, clip_norm, noise_multiplier, expected_batch, noise_key)
    return gradient


def mixed_matching(real, labels_syn: jax.Array, config: PSGConfig, max_batch: int, noise_multiplier: float,
                   augment) -> gm.Matching:
    """One group: a Poisson batch of real images of every class against the whole (decoded) synthetic set, sharing
    the group's augmentation draw (DSA's siamese draw when DSA is on)."""
    num_examples = real.images.shape[0]
    rate = config.batch_real / num_examples

    def real_batch(k_sample, k_aug, g):
        k_draw, k_noise = jax.random.split(k_sample)
        idx, mask = privacy.poisson_batch(k_draw, num_examples, rate, max_batch)
        return augment(k_aug, real.images[idx], True), real.labels[idx], mask, k_noise

    def syn_batch(decoded, k_aug, g):
        return augment(k_aug, decoded, True), labels_syn

    if config.private:
        per_example = private_gradient(config.clip_norm, noise_multiplier, config.batch_real)
        impl = policy.current().per_example_conv_impl  # a vmapped batch of one: the policy's kernel, not 'auto''s
        extra = {"conv_impl": impl} if config.model.name == "convnet" and impl != "auto" else {}
        per_example_net = config.model.build(real.num_classes, **extra)

        def real_gradient(net, params, batch_stats, batch):
            return per_example(per_example_net, params, batch_stats, batch)
    else:  # the reference's non-private branch: the plain mean gradient of the drawn batch
        def real_gradient(net, params, batch_stats, batch):
            return gm.mean_gradient(net, params, batch_stats, batch[:3])
    return gm.Matching(1, real_batch, syn_batch, real_gradient, gm.mean_gradient,
                       get_gradient_distance(config.distance), lambda images: images, 1)


def default_max_batch(config: PSGConfig, num_examples: int, queries: int) -> int:
    """The maximum Poisson batch whose overflow adds at most OVERFLOW_SHARE x delta (for epsilon = inf: the same
    size as at epsilon 0, so that the batch is a true Poisson sample with the same overwhelming probability)."""
    eps = config.epsilon if config.private else 0.0
    return privacy.choose_max_batch(eps, num_examples, config.batch_real / num_examples, queries,
                                    OVERFLOW_SHARE * config.delta)


def accounting_for(config: PSGConfig, plan: RunPlan) -> privacy.Accounting:
    """The noise multiplier, maximum batch and guarantee of `config` on the run `plan` describes (PrivacyError when
    the budget cannot be met)."""
    n = sum(plan.class_counts)
    rate, queries = config.batch_real / n, plan.iterations * config.queries_per_iteration
    if config.batch_real >= n:
        raise privacy.PrivacyError(f"batch_real {config.batch_real} must be below the number of training images ({n})")
    if not config.private:
        max_batch = config.max_batch or default_max_batch(config, n, queries)
        return privacy.Accounting(0.0, math.inf, rate, float(config.batch_real), max_batch, queries, config.accountant,
                                  math.inf, config.delta, math.inf, config.delta, 0.0)
    if config.delta >= 1.0 / n:
        raise privacy.PrivacyError(f"delta {config.delta:g} is not below 1/N = {1.0 / n:.3g} (N = {n} training "
                                   f"images): such a delta allows releasing a whole image; lower delta")
    max_batch = config.max_batch or default_max_batch(config, n, queries)
    extra = privacy.overflow_delta(config.epsilon, n, rate, max_batch, queries)
    acct_delta = config.delta - extra
    if acct_delta <= 0:
        raise privacy.PrivacyError(f"max_batch {max_batch} overflows too often: that alone spends delta "
                                   f"{extra:.3g} > {config.delta:g}; raise max_batch or leave it unset")
    if config.noise_multiplier is None:
        sigma = privacy.calibrate_noise(config.epsilon, acct_delta, rate, queries, config.accountant) \
            if queries else 0.0
    else:
        sigma = config.noise_multiplier
    spent = privacy.epsilon(sigma, rate, queries, acct_delta, config.accountant)
    if spent > config.epsilon * (1 + 1e-3):
        raise privacy.PrivacyError(
            f"noise multiplier {sigma:g} spends epsilon {spent:.4g} over {queries} queries, above the target "
            f"{config.epsilon:g}; raise noise_multiplier, leave it unset to calibrate it, or make fewer queries")
    return privacy.Accounting(sigma, config.clip_norm, rate, float(config.batch_real), max_batch, queries,
                              config.accountant, config.epsilon, config.delta, spent, acct_delta, extra)


def psg(config: PSGConfig, accounted_iterations: int | None = None) -> Method:
    """The PSG method of `config`. Private and without a noise multiplier, it must go through `prepare(plan)` first,
    which returns the calibrated method (its `host_data` refusing iterations beyond `accounted_iterations`)."""
    outer_loop, inner_loop = config.loops
    image_opt, net_opt = optax.sgd(config.lr_img, momentum=config.momentum_img), sgd_optimizer(config.lr_net)
    use_dsa = bool(parse_dsa_strategy(config.dsa_strategy))

    def augment(key, images, siamese):
        return dsa_augment(key, images, config.dsa_strategy, DSAParams(), siamese=siamese) if use_dsa else images

    def noise_multiplier() -> float:
        if not config.private:
            return 0.0
        if config.noise_multiplier is None:
            raise privacy.PrivacyError("this PSG method has no noise multiplier yet: run it through "
                                       "prepare(plan), which calibrates one to (epsilon, delta) for the whole run, "
                                       "or set noise_multiplier")
        return config.noise_multiplier

    def max_batch_for(num_examples: int) -> int:
        return config.max_batch or default_max_batch(config, num_examples, ASSUMED_QUERIES)

    def init(key, inputs) -> PSGState:
        noise_multiplier()  # refuse an uncalibrated private method before any work
        syn = init_synthetic(key, inputs.real, config.ipc, config.init)
        return PSGState(syn, image_opt.init(syn.images), jnp.zeros((), jnp.int32))

    def begin(state: PSGState, key, inputs) -> Carry:
        net_key, loop_key = jax.random.split(key)
        params = config.model.build(inputs.real.num_classes).init(net_key, state.synthetic.images[:1],
                                                                  train=True)["params"]
        return Carry(state.synthetic, state.opt_state, params, net_opt.init(params), jnp.zeros((), jnp.float32),
                     loop_key, state.iteration)

    def matches(c: Carry, ol, inputs) -> Carry:
        """The `batch_loop` matches of outer loop `ol`, each with its own Poisson batch and noise."""
        real, net = inputs.real, config.model.build(inputs.real.num_classes)
        matching = mixed_matching(real, c.synthetic.labels, config, max_batch_for(real.images.shape[0]),
                                  noise_multiplier(), augment)
        ol_key = jax.random.split(jax.random.fold_in(c.loop_key, ol))[0]

        def one(carry, b):
            images, opt_state, loss_sum = carry
            images, opt_state, loss = gm.match(matching, images, opt_state, image_opt, net, c.params, {},
                                               jax.random.fold_in(ol_key, b), policy.current().class_loop)
            return (images, opt_state, loss_sum + loss), None

        (images, opt_state, loss_sum), _ = gm.group_loop(policy.current().class_loop, config.batch_loop, one,
                                                         (c.synthetic.images, c.opt_state, c.loss_sum))
        return c._replace(synthetic=c.synthetic._replace(images=images), opt_state=opt_state, loss_sum=loss_sum)

    def matches_then_train(c: Carry, ol, inputs) -> Carry:
        c = matches(c, ol, inputs)
        syn = jax.lax.stop_gradient(c.synthetic)
        train_key = jax.random.split(jax.random.fold_in(c.loop_key, ol))[1]
        batch_at, per_epoch = gm.epoch_batches(syn.images, syn.labels, train_key, config.batch_train,
                                               lambda key, images: augment(key, images, False))
        params, _, net_state = gm.train_network(config.model.build(inputs.real.num_classes), net_opt, c.params, {},
                                                c.net_opt_state, batch_at, inner_loop * per_epoch,
                                                policy.current().unroll_inner)
        return c._replace(params=params, net_opt_state=net_state)

    def end(c: Carry, inputs):
        c = matches(c, outer_loop - 1, inputs)
        return PSGState(c.synthetic, c.opt_state, c.iteration + 1), {
            "match_loss": c.loss_sum / (outer_loop * config.batch_loop)}

    def check(plan: RunPlan) -> dict[str, Any]:
        if config.private and plan.zca:
            raise privacy.PrivacyError("ZCA whitening is fitted on the private training split; PSG normalises with "
                                       "the dataset's fixed public mean and std (leave zca off)")
        shapes = jax.eval_shape(lambda: config.model.build(plan.num_classes).init(
            jax.random.PRNGKey(0), jnp.zeros((1,) + tuple(plan.image_shape)), train=True))
        if config.private and shapes.get("batch_stats"):
            raise privacy.PrivacyError(f"model {config.model} has batch norm, whose statistics mix the private "
                                       f"examples of a batch; use a model without it")
        return {}

    loop = StepLoop(begin, matches_then_train, outer_loop - 1, end)
    base = method(init, lambda state: state.synthetic, check=check, loop=loop)

    def prepare(plan: RunPlan):
        check(plan)
        acct = accounting_for(config, plan)
        facts = {"queries_per_iteration": config.queries_per_iteration, "private": config.private}
        if config.private:
            other = "pld" if config.accountant == "rdp" else "rdp"
            both = len(plan.seeds) * acct.queries
            facts["privacy"] = {
                **acct.to_dict(),
                f"epsilon_{other}": privacy.epsilon(acct.noise_multiplier, acct.sampling_rate, acct.queries,
                                                    acct.accountant_delta, other),
                # every seed's set is its own release; publishing all of them together composes their queries
                "epsilon_all_seeds_released": privacy.epsilon(acct.noise_multiplier, acct.sampling_rate, both,
                                                              acct.accountant_delta, config.accountant),
                "seeds": len(plan.seeds),
                "protects": "membership of any one training image (add/remove one image)",
                "public": "architecture, hyper-parameters, the number of training images, and the dataset's fixed "
                          "normalisation constants"}
        else:
            facts["max_batch_size"] = acct.max_batch_size
        prepared = psg(dataclasses.replace(config, noise_multiplier=acct.noise_multiplier,
                                           max_batch=acct.max_batch_size), plan.iterations)
        return prepared, facts

    def host_data(seed: int, iteration: int):
        if accounted_iterations is not None and iteration >= accounted_iterations:
            raise privacy.PrivacyError(
                f"iteration {iteration + 1} would make private queries beyond the {accounted_iterations} iterations "
                f"this run was accounted for; start a new run (a new workdir) with the iterations you need")
        return ()

    def report(plan: RunPlan, iteration: int) -> dict[str, float]:
        if not config.private or config.noise_multiplier is None:
            return {}
        n = sum(plan.class_counts)
        queries = iteration * config.queries_per_iteration
        extra = privacy.overflow_delta(config.epsilon, n, config.batch_real / n, max_batch_for(n), queries)
        return {"epsilon": privacy.epsilon(config.noise_multiplier, config.batch_real / n, queries,
                                           config.delta - extra, config.accountant)}

    return base._replace(prepare=prepare, host_data=host_data, report=report)


register_method("psg", PSGConfig, "private set generation: gradient matching with a differentially private real "
                                  "gradient (Chen et al., NeurIPS 2022)", iterations=1000)(psg)
