"""Model soups: averaging by hand, greedy rejection of a harmful ingredient, and a tiny full run of finalize."""
import torch
from torch import nn
from torch.utils.data import TensorDataset

from benchmark.harness.plan import suite_recipe
from benchmark.engine import loader
from benchmark.engine import RunContext
from methods import METHODS
from methods.soup import average_states, greedy_soup

X = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
Y = torch.tensor([0, 1])
I, P = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])


def two_layer(w1, w2):
    return {"0.weight": w1, "2.weight": w2}


def score(state):
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    net.load_state_dict(state)
    return (net(X).argmax(1) == Y).float().mean().item()


def test_soup_of_identical_models_is_the_model():
    torch.manual_seed(0)
    state = {**nn.BatchNorm1d(3).state_dict(), "w": torch.randn(2, 2)}
    soup = average_states([state, {k: v.clone() for k, v in state.items()}, state])
    assert soup.keys() == state.keys() and all(torch.equal(soup[k], state[k]) for k in state)


def test_uniform_average_of_two_2x2():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([[3.0, 0.0], [-1.0, 8.0]]), "n": torch.tensor(7)}
    soup = average_states([a, b])
    assert torch.equal(soup["w"], torch.tensor([[2.0, 1.0], [1.0, 6.0]]))
    assert soup["n"].item() == 5  # integer counters are not averaged


def test_greedy_rejects_an_ingredient_that_lowers_selection_accuracy():
    good = two_layer(I, I)
    # The same function with its hidden units swapped: perfect alone, but averaged with `good` both
    # layers become all-0.5 and every input gets equal logits (accuracy 1/2).
    permuted = two_layer(P, P)
    assert score(good) == score(permuted) == 1.0
    assert score(average_states([good, permuted])) == 0.5
    members, scores = greedy_soup([good, permuted], score)
    assert members == [0] and scores == [1.0, 1.0]
    # A compatible ingredient (same basin) is kept, and the best-scoring ingredient leads.
    weak = two_layer(I, -3 * I)  # wrong alone, and it cancels the other two in the average
    members, _ = greedy_soup([weak, good, two_layer(I, 2 * I)], score)
    assert members == [1, 2]


def test_greedy_judges_candidates_as_the_soup_will_be_built():
    good, permuted = two_layer(I, I), two_layer(P, P)
    seen = []

    def repaired(states):  # stands in for an average whose BatchNorm statistics are re-estimated
        seen.append(len(states))
        return good

    members, _ = greedy_soup([good, permuted], score, repaired)
    assert members == [0, 1] and seen == [2]


def test_finalize_trains_ingredients_and_returns_every_variant(tmp_path):
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone, model.head = nn.Linear(2, 4), nn.Linear(4, 2)
    model.forward = lambda x: model.head(torch.relu(model.backbone(x)))
    data = TensorDataset(torch.randn(16, 2), torch.randint(0, 2, (16,)))
    ctx = RunContext(train_loader=loader(data, 8), selection_loader=loader(data, 8),
                     device=torch.device("cpu"), num_classes=2, suite="test", seed=0,
                     checkpoint=tmp_path / "run.ckpt.pt", progress=False)  # fmt: skip
    cls = METHODS.get("soup")
    method = cls({**suite_recipe("fmnist-c"), **cls.HPARAMS, "epochs": 1, "batch_size": 8})
    method.setup(model, ctx)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.head.bias.add_(1.0)  # stands in for the harness loop's training of ingredient 0
    variants = method.finalize(model)
    assert set(variants) == {"soup-uniform", "soup-greedy", "soup-ingredient-0", "soup-ingredient-1", "soup-ingredient-2"}
    assert torch.equal(variants["soup-ingredient-0"]["head.bias"], initial["head.bias"] + 1.0)
    w1, w2 = variants["soup-ingredient-1"]["backbone.weight"], variants["soup-ingredient-2"]["backbone.weight"]
    assert not torch.equal(w1, initial["backbone.weight"]) and not torch.equal(w1, w2)
    assert torch.allclose(variants["soup-uniform"]["backbone.weight"],
                          sum(variants[f"soup-ingredient-{i}"]["backbone.weight"] for i in range(3)) / 3)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # ingredient checkpoints are cleaned up
