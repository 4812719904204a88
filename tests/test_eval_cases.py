"""Properties of visxai.evaluation.eval_case and visxai.data.eval_sets (notebook 02 / AGF cases)."""

import pytest
import torch

from visxai.data.eval_sets import eval_data
from visxai.evaluation import eval_case, multilabel_pairs, predict


def test_unknown_names_raise_value_error_not_system_exit():
    with pytest.raises(ValueError, match="imagenet-seg"):
        eval_data("nope", 1, 0, None)
    with pytest.raises(ValueError, match="rotnet-synthetic"):
        eval_case("nope", n=1)
    with pytest.raises(ValueError, match="n must be"):
        eval_case("synthetic", n=0)
    with pytest.raises(ValueError, match="needs model="):
        eval_case("fashion-mnist", n=3)


def test_synthetic_case_items_are_the_explained_pairs_with_their_class_masks():
    from visxai.data.synthetic import make_synthetic

    pool = make_synthetic(30, seed=0, split="test")
    case = eval_case("synthetic", n=20, pool=pool)
    sub = pool.subset(slice(0, 20))
    pidx, cls = multilabel_pairs(predict(case.model, sub.images), sub.labels)
    assert len(case) == len(pidx) > 0
    assert torch.equal(case.image_index, pidx) and torch.equal(case.targets, cls)
    assert torch.equal(case.images, sub.images[pidx])
    assert torch.equal(case.masks, sub.subset(pidx).class_mask(cls))
    # every explained class is present in its image: a non-empty ground truth per item
    assert bool((case.masks.flatten(1).sum(1) > 0).all())
    assert bool((sub.labels[pidx, cls] > 0.5).all())
    # the pool's first n images are the set's own first n (one set can serve several cases)
    alone = eval_case("synthetic", n=20)
    assert torch.equal(alone.images, case.images) and torch.equal(alone.masks, case.masks)
    # get(idx) reads the same items as the full tensors
    idx = torch.tensor([3, 0])
    x, t, m = case.get(idx)
    assert torch.equal(x, case.images[idx]) and torch.equal(t, cls[idx])
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


def test_distributed_segmentation_rows_are_the_case_pairs_scored_directly(tmp_path):
    """torchrun's segmentation task = eval_case's pairs scored by segmentation_eval, a row each."""
    from visxai.distributed import load_results, main
    from visxai.evaluation import method_fn, segmentation_eval
    from visxai.methods.registry import get_method

    out = tmp_path / "seg"
    argv = ["segmentation", "--model", "synthetic-multilabel", "--method", "gradcam"]
    argv += ["--data", "synthetic", "--num-images", "12", "--chunk-size", "5", "--out", str(out)]
    assert main(argv) == 0
    res = load_results(out)
    case = eval_case("synthetic", n=12)
    sc, _ = segmentation_eval(
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
