"""Properties of visxai.evaluation.eval_case and visxai.data.eval_sets (notebook 02 / AGF cases)."""

import pytest
import torch

from visxai.data.eval_sets import eval_data
from visxai.evaluation import eval_case, predict


def test_unknown_names_raise_value_error_not_system_exit():
    with pytest.raises(ValueError, match="imagenet-seg"):
        eval_data("nope", 1, 0, None)
    with pytest.raises(ValueError, match="rotnet-synthetic"):
        eval_case("nope", n=1)
    with pytest.raises(ValueError, match="n must be"):
        eval_case("synthetic", n=0)
    with pytest.raises(ValueError, match="needs model="):
        eval_case("fashion-mnist", n=3)


def test_synthetic_case_items_are_images_with_their_predicted_labels_and_class_map():
    """Table 3b as the authors: every label with sigmoid > 0.5 (present in the image or not) and
    the per-pixel class mask (0 background, c + 1 on class c's visible object)."""
    from visxai.data.synthetic import make_synthetic

    pool = make_synthetic(30, seed=0, split="test")
    case = eval_case("synthetic", n=20, pool=pool)
    sub = pool.subset(slice(0, 20))
    assert case.multilabel and len(case) == 20
    assert torch.equal(case.image_index, torch.arange(20))
    assert torch.equal(case.images, sub.images)
    assert torch.equal(case.targets, torch.sigmoid(predict(case.model, sub.images)) > 0.5)
    exact = float((case.targets.float() == sub.labels).all(1).float().mean())
    assert case.exact_match == pytest.approx(exact)
    # the class map: every object's pixels carry its class + 1, the rest is background
    lab = case.masks
    for i in range(20):
        for slot, c in enumerate(sub.object_classes[i].tolist(), start=1):
            if c >= 0:
                assert bool((lab[i][sub.instances[i] == slot] == c + 1).all())
        assert bool((lab[i][sub.instances[i] == 0] == 0).all())
        assert set(lab[i].unique().tolist()) - {0} == {
            c + 1 for c in torch.nonzero(sub.labels[i]).flatten().tolist()
        }
    # the pool's first n images are the set's own first n (one set can serve several cases)
    alone = eval_case("synthetic", n=20)
    assert torch.equal(alone.images, case.images) and torch.equal(alone.masks, case.masks)
    idx = torch.tensor([3, 0])
    x, t, m = case.get(idx)
    assert torch.equal(x, case.images[idx]) and torch.equal(t, case.targets[idx])
    assert torch.equal(m, case.masks[idx])


def test_classification_case_reads_the_first_n_test_images_and_their_labels():
    from visxai.data import load_fashion_mnist

    case = eval_case("fashion-mnist", model="fmnist-vgg", n=7)
    x, y = load_fashion_mnist("test")
    assert case.n == 7 and torch.equal(case.images, x[:7]) and torch.equal(case.targets, y[:7])
    assert case.masks is None and case.loaded is not None and not case.model.training


def test_rotnet_case_labels_are_the_applied_rotations():
    from visxai.models.selfsup_miniatures import rotate

    case = eval_case("rotnet-synthetic", n=12, bank_size=16)
    assert case.n == 12 and case.bank.shape[0] == 16 and case.bank_images.shape[0] == 16
    assert case.masks.shape == (12, *case.images.shape[2:])
    # undoing each item's rotation gives back an unrotated synthetic test image
    from visxai.data.synthetic import make_synthetic

    test = make_synthetic(12, seed=0, split="test")
    back = torch.stack([rotate(case.images[i : i + 1], -int(k))[0] for i, k in
                        enumerate(case.targets)])  # fmt: skip
    assert torch.equal(back, test.images)


def test_distributed_turns_a_missing_artefact_into_exit_status_2(tmp_path, monkeypatch, capsys):
    from visxai.distributed import main

    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    out = tmp_path / "run"
    argv = ["segmentation", "--profile", "paper", "--model", "vgg19", "--data", "imagenet-seg"]
    assert main([*argv, "--num-images", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("visxai.distributed segmentation: ") and "python -m visxai fetch" in err
    assert not out.exists()


def test_distributed_segmentation_rows_are_the_case_images_scored_directly(tmp_path):
    """torchrun's segmentation task = eval_case's images scored by the same 3b evaluation, a row
    each, in chunks that split no image's classes."""
    from visxai.distributed import load_results, main
    from visxai.evaluation import method_fn, multilabel_segmentation_eval
    from visxai.methods.registry import get_method

    out = tmp_path / "seg"
    argv = ["segmentation", "--model", "synthetic-multilabel", "--method", "gradcam"]
    argv += ["--data", "synthetic", "--num-images", "12", "--chunk-size", "5", "--out", str(out)]
    assert main(argv) == 0
    res = load_results(out)
    case = eval_case("synthetic", n=12)
    sc, _ = multilabel_segmentation_eval(
        case.model,
        case.images,
        case.targets,
        case.masks,
        method_fn("gradcam"),
        signed=get_method("gradcam").signed,
    )
    assert torch.equal(res["image"], case.image_index) and torch.equal(res["class"], case.targets)
    assert torch.equal(res["correct"], torch.from_numpy(sc.correct))
    assert torch.equal(res["labeled"], torch.from_numpy(sc.labeled))
    assert torch.allclose(res["ap"].double(), torch.from_numpy(sc.ap).double())
