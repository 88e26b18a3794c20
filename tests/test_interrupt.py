"""A Cancel stops the long model calls at the next layer: the VAE decode of a chunk, a DIFT ensemble
and a CMP batch (issue 16: they used to check only between whole chunks / ensembles / batches).

Each test answers True at the N-th check, counts the layers that still start through the models'
own pre-hooks (they run after the check), and expects exactly N - 1 of them: nothing runs after the
stop, so the rest of the frame / ensemble member / batch is never computed.
"""
from __future__ import annotations

import threading

import pytest
import torch

from dispose_core.interrupt import stop_between_layers
from dispose_core.loading.layout import BY_KEY
from motion_fixtures import random_poses

STOP_AT = 7


class LayerCounter:
    """Counts the module calls of ``model`` (its own pre-hooks) and says stop at the N-th check."""

    def __init__(self, model: torch.nn.Module, stop_at: int = STOP_AT):
        self.checks, self.layers, self.stop_at = 0, 0, stop_at
        self.handles = [m.register_forward_pre_hook(self._count) for m in model.modules()]

    def _count(self, module, args) -> None:
        self.layers += 1

    def should_stop(self) -> bool:
        self.checks += 1
        return self.checks >= self.stop_at

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def test_stop_between_layers_stops_at_the_next_layer_of_this_thread_only():
    model = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(12)])
    counter = LayerCounter(model, stop_at=4)
    with pytest.raises(InterruptedError, match="The test model was interrupted"):
        with stop_between_layers(counter.should_stop, "The test model"):
            model(torch.ones(1, 3))
    assert counter.checks == 4 and counter.layers == 3  # the Sequential and two Linears ran

    other = []
    with stop_between_layers(lambda: True, "Never"):
        thread = threading.Thread(target=lambda: other.append(model(torch.ones(1, 3))))
        thread.start()
        thread.join()
    assert len(other) == 1  # another thread's model calls are not ours to stop
    model(torch.ones(1, 3))  # the hook is gone after the block
    counter.remove()


def test_a_host_exception_passes_through():
    class HostInterrupt(Exception):
        pass

    def raising():
        raise HostInterrupt

    with pytest.raises(HostInterrupt):
        with stop_between_layers(raising, "x"):
            torch.nn.Linear(2, 2)(torch.ones(2))


def test_decode_stops_inside_a_chunk(tiny_models_dir):
    from dispose_core.loading.mimicmotion import load_mimicmotion
    from dispose_core.sampling.decode import decoded_chunks

    models = load_mimicmotion(BY_KEY["svd"].path_in(tiny_models_dir), BY_KEY["mimicmotion"].path_in(tiny_models_dir))
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    counter = LayerCounter(models.vae)
    list(decoded_chunks(models.vae, latents, chunk_size=4))
    layers_per_chunk = counter.layers
    counter.layers, chunks = 0, []
    with pytest.raises(InterruptedError, match="Decoding"):
        list(decoded_chunks(models.vae, latents, chunk_size=4, on_chunk=lambda: chunks.append(1),
                            should_stop=counter.should_stop))
    assert counter.layers == STOP_AT - 1 < layers_per_chunk and chunks == []  # not even one chunk finished
    counter.remove()


def test_dift_stops_inside_the_first_ensemble_member(tiny_models_dir):
    from dispose_core.dift.featurizer import extract_features
    from dispose_core.loading.sd15 import load_dift

    dift = load_dift(BY_KEY["sd15"].path_in(tiny_models_dir))
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    counter = LayerCounter(dift.unet)
    extract_features(dift, image, ensemble_size=1, generator=torch.Generator().manual_seed(0))
    layers_per_member = counter.layers
    counter.layers, done = 0, []
    with pytest.raises(InterruptedError, match="DIFT"):
        extract_features(dift, image, ensemble_size=4, ensemble_chunk=1, generator=torch.Generator().manual_seed(0),
                         progress=lambda d, t: done.append(d), should_stop=counter.should_stop)
    assert counter.layers == STOP_AT - 1 < layers_per_member and done == []
    counter.remove()


def test_cmp_stops_inside_a_batch(tiny_models_dir):
    from dispose_core.motion.cmp import load_cmp
    from dispose_core.motion.dense_flow import compute_dense_flow
    from dispose_core.motion.sparse_flow import cmp_image

    cmp = load_cmp(BY_KEY["cmp"].path_in(tiny_models_dir))
    poses, reference = random_poses(5, 64, 48, seed=1), torch.rand(3, 64, 48)
    counter = LayerCounter(cmp)
    with torch.no_grad():
        cmp.encode_image(cmp_image(reference)[None])  # once per video, before the batches
    encode_layers = counter.layers
    compute_dense_flow(cmp, reference, poses, batch_size=4)  # 4 driving frames: one batch
    batch_layers = counter.layers - 2 * encode_layers
    counter.layers, done = 0, []
    with pytest.raises(InterruptedError, match="CMP"):
        compute_dense_flow(cmp, reference, poses, batch_size=4, progress=lambda d, t: done.append(d),
                           should_stop=counter.should_stop)
    assert counter.layers - encode_layers == STOP_AT - 1 < batch_layers and done == []
    counter.remove()
