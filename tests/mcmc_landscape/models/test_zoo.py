"""The model zoo: the paper's models at their published sizes, the written-out LSTM equal to torch's, flat layouts."""

import pytest
import torch

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.zoo import PTBLSTM, FlatLayout, build_model


@pytest.mark.parametrize("name, options, shape, p", [
    ("mnist-convnet", {}, (1, 28, 28), 3_274_634),       # ~3.3M, as the paper's MNIST model
    ("cifar10-convnet", {}, (3, 32, 32), 89_578),
    ("mnist-convnet", {"width": 0.25}, (1, 28, 28), 206_954),
])
def test_paper_convnets_have_their_sizes_and_classify(name, options, shape, p):
    net = build_model(name, **options)
    assert FlatLayout.of(net).p == p
    assert net(torch.zeros(3, *shape)).shape == (3, 10)


def test_ptb_lstm_is_zarembas_small_model_and_equals_torch_lstm():
    assert FlatLayout.of(PTBLSTM()).p == 4_651_600
    torch.manual_seed(0)
    net = PTBLSTM(vocab=13, hidden=6, layers=2).double()
    ref = torch.nn.LSTM(6, 6, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for k in range(2):
            getattr(ref, f"weight_ih_l{k}").copy_(net.w_in[k].weight)
            getattr(ref, f"bias_ih_l{k}").copy_(net.w_in[k].bias)
            getattr(ref, f"weight_hh_l{k}").copy_(net.w_rec[k].weight)
            getattr(ref, f"bias_hh_l{k}").zero_()
    tokens = torch.randint(0, 13, (3, 7))
    h, _ = ref(net.embed(tokens))
    torch.testing.assert_close(net(tokens), net.decode(h))


def test_flat_layout_round_trips_and_unknown_models_are_refused():
    net = build_model("small-convnet", in_channels=1, side=12)
    layout = FlatLayout.of(net)
    flat = layout.flatten(net)
    assert flat.shape == (layout.p,)
    for name, q in net.named_parameters():
        torch.testing.assert_close(layout.unflatten(flat)[name], q.detach())
    with pytest.raises(SpecError, match="not in the zoo"):
        build_model("resnet-152")
