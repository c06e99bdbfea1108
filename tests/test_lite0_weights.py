"""The embedded backbone really is ImageNet-pretrained: a bundled photo is classified correctly."""
import torch
from PIL import Image
from skimage import data
from torchvision import transforms as T

from benchmark.models import create_backbone
from benchmark.models.cnn import lite0_state_dict

ESPRESSO = 967  # ImageNet-1k class index of "espresso"


def test_pretrained_lite0_calls_the_coffee_photo_espresso():
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(lite0_state_dict(), strict=True)
    net.eval()
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    with torch.no_grad():
        probs = net(tf(Image.fromarray(data.coffee())).unsqueeze(0)).softmax(1)[0]
    assert probs.argmax().item() == ESPRESSO and probs[ESPRESSO] > 0.5


def test_lite0_family_builds_features_and_a_fresh_head():
    built = create_backbone("lite0", ["a", "b", "c"], 32)
    assert built.model.head.out_features == 3 and built.model.head.in_features == 1280
    with torch.no_grad():
        assert built.model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    pretrained = lite0_state_dict()["conv_stem.weight"]
    assert torch.equal(built.model.backbone.conv_stem.weight, pretrained)
