"""Omniglot reading, splitting and episode sampling on a synthetic fixture."""

import logging
import shutil
from pathlib import Path

import pytest
import torch

from maml import MAML
from maml.run.errors import UsageError
from maml_sl.data.omniglot import load_omniglot
from maml_sl.data.splits import split_characters
from maml_sl.losses import cross_entropy
from maml_sl.models import conv4
from maml_sl.tasks.fewshot import FewShotTasks
from tests.conftest import cli
from tests.omniglot_fixture import write_omniglot, zip_folder


@pytest.fixture(scope="module")
def omniglot_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("omniglot")
    write_omniglot(root, "images_background", alphabets=3, characters=4, seed=0)
    write_omniglot(root, "images_evaluation", alphabets=2, characters=3, seed=1)
    return root


def test_folder_and_zip_layouts_read_the_same(omniglot_dir, tmp_path):
    from_folders = load_omniglot(omniglot_dir)
    assert from_folders.images.shape == (18, 6, 28, 28)
    assert from_folders.images.dtype == torch.uint8
    assert from_folders.names[0] == "images_background/Alphabet_0_0/character01"
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for name in ("images_background", "images_evaluation"):
        zip_folder(omniglot_dir / name, zipped / f"{name}.zip")
    from_zips = load_omniglot(zipped)
    assert from_zips.names == from_folders.names
    assert torch.equal(from_zips.images, from_folders.images)
    single = load_omniglot(zipped / "images_evaluation.zip")
    assert len(single.names) == 6 and torch.equal(single.images, from_folders.images[12:])
    assert not any(p.name.endswith(".pt") for p in omniglot_dir.rglob("*"))


def test_strokes_are_bright_on_dark_background(omniglot_dir):
    images = load_omniglot(omniglot_dir).images.float()
    assert images.mean() < 80  # mostly background (0) with bright strokes
    assert images.amax() == 255


def test_cache_dir_reuses_the_decoded_tensor(omniglot_dir, tmp_path):
    first = load_omniglot(omniglot_dir, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("omniglot-*.pt"))
    assert len(cached) == 1
    again = load_omniglot(omniglot_dir, cache_dir=tmp_path / "cache")
    assert torch.equal(first.images, again.images) and first.names == again.names


def test_bad_layouts_name_the_path_and_what_is_missing(omniglot_dir, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_omniglot(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=f"{empty} holds no Omniglot set"):
        load_omniglot(empty)
    broken = tmp_path / "broken"
    shutil.copytree(omniglot_dir / "images_background", broken / "images_background")
    (broken / "images_background" / "Alphabet_0_0" / "character99").mkdir()
    with pytest.raises(UsageError, match="character99 has no PNGs"):
        load_omniglot(broken)
    not_png = broken / "images_background" / "Alphabet_0_0" / "character99" / "x.png"
    not_png.write_bytes(b"not an image")
    with pytest.raises(UsageError, match="x.png is not a readable image"):
        load_omniglot(broken)


def test_splits_by_set_by_alphabet_and_seeded(omniglot_dir):
    characters = load_omniglot(omniglot_dir)
    by_set = split_characters(
        characters, train_on=["images_background"], test_on=["images_evaluation"]
    )
    assert all(n.startswith("images_evaluation") for n in by_set["test"].names)
    train_names = by_set["train"].names + by_set["val"].names
    assert len(train_names) == 12 and all(n.startswith("images_background") for n in train_names)
    by_alphabet = split_characters(characters, test_on=["Alphabet_0_1"])
    assert {n.split("/")[1] for n in by_alphabet["test"].names} == {"Alphabet_0_1"}
    seeded = split_characters(characters, split_seed=3)
    names = [set(seeded[k].names) for k in ("train", "val", "test")]
    assert sum(len(s) for s in names) == 18 and not (names[0] & names[1] or names[0] & names[2])
    assert split_characters(characters, split_seed=3)["test"].names == seeded["test"].names
    with pytest.raises(UsageError, match="--test-on Klingon selects no characters"):
        split_characters(characters, test_on=["Klingon"])


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """small1 with alphabets 0-2; small2 with a copy of alphabet 0_1 (one drawing re-encoded, so
    its bytes differ but not its pixels) and two alphabets of its own."""
    root = tmp_path_factory.mktemp("small")
    small1 = write_omniglot(root, "images_background_small1", alphabets=3, characters=3, seed=0)
    small2 = write_omniglot(root, "images_background_small2", alphabets=2, characters=3, seed=1)
    shutil.copytree(small1 / "Alphabet_0_1", small2 / "Alphabet_0_1")
    from PIL import Image

    drawing = sorted((small2 / "Alphabet_0_1" / "character01").glob("*.png"))[0]
    before = drawing.read_bytes()
    Image.open(drawing).save(drawing, compress_level=0)
    assert drawing.read_bytes() != before
    return root


def test_copied_characters_count_once_without_selectors(small_sets):
    characters = load_omniglot(small_sets)
    assert len(characters.names) == 18  # 9 + 9 folders, 3 of them copies
    parts = split_characters(characters)
    names = [n for part in parts.values() for n in part.names]
    assert len(names) == 15
    alphabets = [n.split("/", 1)[1].rsplit("/", 1)[0] for n in names]
    assert alphabets.count("Alphabet_0_1") == 3


def test_a_test_side_holding_training_images_is_refused_naming_the_disjoint_choice(small_sets):
    characters = load_omniglot(small_sets)
    sides = {"train_on": ["images_background_small1"], "test_on": ["images_background_small2"]}
    with pytest.raises(UsageError) as error:
        split_characters(characters, **sides)
    message = str(error.value)
    assert "\n" not in message
    assert "images_background_small2/Alphabet_0_1 (3) are copies from " in message
    assert "images_background_small1/Alphabet_0_1 (3)" in message
    choice = "images_background_small2/Alphabet_1_0,images_background_small2/Alphabet_1_1"
    assert message.endswith(f"test on the rest: --test-on {choice}")
    parts = split_characters(characters, train_on=sides["train_on"], test_on=choice.split(","))
    assert {n.rsplit("/", 1)[0] for n in parts["test"].names} == set(choice.split(","))
    rest = split_characters(characters, train_on=sides["train_on"])  # test: the rest, no copies
    assert rest["test"].names == parts["test"].names
    with pytest.raises(UsageError, match="both select images_background_small1/Alphabet_0_0"):
        split_characters(characters, train_on=["Alphabet_0_0"], test_on=["Alphabet_0_0"])


def test_the_test_characters_do_not_move_with_the_training_seed(omniglot_dir):
    from maml_sl.config import TrainConfig
    from maml_sl.tasks import make_task

    def test_images(**settings):
        config = TrainConfig(
            task="omniglot", data=str(omniglot_dir), ways=3, shots=1, query=2, **settings
        )
        return make_task(config, torch.device("cpu")).test_sampler.images

    first = test_images(seed=0)
    assert torch.equal(test_images(seed=7), first)
    assert not torch.equal(test_images(split_seed=7), first)


def test_episodes_have_n_classes_k_shots_q_queries_and_no_overlap(omniglot_dir):
    characters = load_omniglot(omniglot_dir)
    tasks = FewShotTasks(characters.images, characters.counts, ways=5, rotations=True)
    (xs, ys), (xq, yq) = tasks.sample(7, 2, 3, torch.Generator().manual_seed(0))
    assert xs.shape == (7, 10, 1, 28, 28) and xq.shape == (7, 15, 1, 28, 28)
    assert xs.dtype == torch.float32 and 0 <= xs.min() and xs.max() <= 1
    for t in range(7):
        assert sorted(ys[t].tolist()) == sorted(list(range(5)) * 2)
        assert sorted(yq[t].tolist()) == sorted(list(range(5)) * 3)
        # every image of the task comes from its class's (possibly rotated) drawings only once
        flat = torch.cat([xs[t], xq[t]]).flatten(1)
        assert torch.unique(flat, dim=0).shape[0] == 25


def test_rotations_turn_every_image_of_a_class_the_same_way(omniglot_dir):
    characters = load_omniglot(omniglot_dir)
    one = characters.subset([0])
    tasks = FewShotTasks(one.images, one.counts, ways=4, rotations=True)
    (xs, ys), _ = tasks.sample(1, 6, 0, torch.Generator().manual_seed(0))
    originals = one.images[0].float() / 255
    for label in range(4):
        images = xs[0, ys[0] == label, 0]
        turns = [
            k for k in range(4) if any(torch.equal(images[0], torch.rot90(o, k)) for o in originals)
        ]
        assert len(turns) == 1
        for image in images:
            assert any(torch.equal(image, torch.rot90(o, turns[0])) for o in originals)


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` (H, W[, C]) moved down by dy and right by dx, zero fill (the plain reference)."""
    out = torch.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


@pytest.mark.parametrize("colour", [False, True])
def test_shift_translates_each_image_by_its_own_offset_within_bounds(colour):
    shape = (3, 4, 10, 10, 3) if colour else (3, 4, 10, 10)
    images = torch.randint(
        1, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    tasks = FewShotTasks(images, torch.full((3,), 4), ways=3, shift=2)
    (xs, ys), (xq, yq) = tasks.sample(5, 1, 3, torch.Generator().manual_seed(1))
    x = torch.cat([xs, xq], 1)
    offsets = set()
    for image in x.movedim(2, -1).flatten(0, 1):  # (H, W, C)
        image = image if colour else image[..., 0]
        found = [
            (dy, dx)
            for o in images.flatten(0, 1).float() / 255
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(image, _shifted(o, dy, dx))
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 10  # offsets are drawn per image
    with pytest.raises(UsageError, match="shift 5 must be at least 0 and below half"):
        FewShotTasks(images, torch.full((3,), 4), ways=3, shift=5)


def test_too_few_classes_or_images_are_named():
    images = torch.zeros(3, 4, 28, 28, dtype=torch.uint8)
    with pytest.raises(UsageError, match="3 classes, fewer than --ways 5"):
        FewShotTasks(images, torch.full((3,), 4), ways=5, name="the test set")
    tasks = FewShotTasks(images, torch.tensor([4, 2, 4]), ways=2)
    with pytest.raises(
        UsageError, match="only 2 images per class; --shots 1 plus --query 3 need 4"
    ):
        tasks.check_sizes(1, 3)


def test_meta_training_on_the_fixture_raises_accuracy_after_adaptation(omniglot_dir):
    torch.manual_seed(0)
    characters = load_omniglot(omniglot_dir)
    parts = split_characters(characters, split_seed=0, test_fraction=0.3, val_fraction=0.0)
    train = FewShotTasks(parts["train"].images, parts["train"].counts, ways=5, rotations=True)
    test = FewShotTasks(parts["test"].images, parts["test"].counts, ways=5, rotations=True)
    learner = MAML(conv4(1, 5, filters=16), cross_entropy, inner_lr=0.4, first_order=True)
    optimizer = torch.optim.Adam(learner.parameters(), lr=3e-3)
    support, query = test.sample(100, 1, 3, torch.Generator().manual_seed(5))

    def accuracy() -> float:
        with torch.no_grad():
            adapted = learner.adapt(support)
            xq, yq = query
            hits = [
                learner.functional({n: p[t] for n, p in adapted.items()})(xq[t]).argmax(-1) == yq[t]
                for t in range(len(yq))
            ]
        return torch.stack(hits).float().mean().item()

    before = accuracy()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss = learner.meta_loss(*train.sample(4, 1, 3, g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = accuracy()
    assert after > 2 / 5 and after > before + 0.07, (before, after)  # chance is 1/5


def test_train_cli_meta_trains_omniglot_and_logs_accuracy(omniglot_dir, tmp_path, capsys, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from maml.run.checkpoint import load_checkpoint
    from maml.run.config import read_toml
    from maml_sl.evaluate import main as evaluate_main
    from tests.test_sinusoid import run_train

    run = tmp_path / "run"
    args = ["--task", "omniglot", "--data", str(omniglot_dir), "--ways", "3", "--shots", "1"]
    args += ["--query", "2", "--meta-batch", "2", "--iterations", "4", "--filters", "8"]
    args += ["--log-every", "2", "--val-every", "4", "--val-tasks", "3", "--run-dir", str(run)]
    args += ["--figure-every", "4", "--inner-lr", "0.4"]
    args += ["--train-on", "images_background", "--test-on", "images_evaluation"]
    assert run_train(args) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 4
    assert "11 train / 1 val / 6 test characters" in capsys.readouterr().err
    split = read_toml(run / "history.toml")["history"][0]["split"]
    assert split == {"unit": "characters", "train": 11, "val": 1, "test": 6}
    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"losses/query_accuracy_after_adaptation", "val/query_accuracy_after_1_steps"} <= tags
    assert "val/held_out_tasks" in events.Tags()["images"]

    capsys.readouterr()
    assert (
        cli(evaluate_main, [str(run), "--tasks", "6", "--ways", "3", "2", "--steps", "1", "3"]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    # images_background's 12 characters give 1 (10%) to validation; images_evaluation has 6.
    assert out[0] == "omniglot: 11 train / 1 val / 6 test characters"
    assert out[1] == "3-way" and out[5] == "2-way"
    assert out[2].startswith("query accuracy (%) on 6 new tasks per K")
    assert out[4].split()[0] == "1" and len(out[4].split()) == 7  # K, then mean ± CI per step
    assert cli(evaluate_main, [str(run), "--ways", "4"]) == 2
    assert "--ways 4: the model was trained 3-way; allowed 1..3" in capsys.readouterr().err
    check_adapt_on_folders(run, omniglot_dir, tmp_path, capsys, caplog)


def check_adapt_on_folders(run, omniglot_dir, tmp_path, capsys, caplog):
    from maml.run.errors import run_cli
    from maml_sl.adapt import main as adapt_main
    from maml_sl.adapt import predict

    alphabet = omniglot_dir / "images_evaluation" / "Alphabet_1_0"
    support, query = tmp_path / "support", tmp_path / "query"
    query.mkdir()
    for name in ("character01", "character02", "character03"):
        drawings = sorted((alphabet / name).glob("*.png"))
        (support / f"my_{name}").mkdir(parents=True)
        shutil.copy(drawings[0], support / f"my_{name}" / drawings[0].name)
        for drawing in drawings[1:3]:
            shutil.copy(drawing, query / drawing.name)
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        rows = predict(run, support, query, steps=2, device="cpu")
    assert capsys.readouterr() == ("", "")  # a library call leaves its messages to logging
    assert f"{run}: trained for 4 of 4 iterations" in caplog.messages
    assert (
        "adapting on 3 images of 3 classes (2 steps), then classifying 6 images" in caplog.messages
    )
    assert [Path(f).name for f, _, _ in rows] == sorted(p.name for p in query.iterdir())
    assert {c for _, c, _ in rows} <= {"my_character01", "my_character02", "my_character03"}
    assert all(1 / 3 <= p <= 1 for _, _, p in rows)
    # Each query image a copy of one class's support image (folders named against their sorted
    # order, files against theirs): after adaptation each must come back as its own folder.
    mapped, copies = tmp_path / "mapped", tmp_path / "copies"
    copies.mkdir()
    expected = {}
    for folder, name, file in (
        ("z_first", "character01", "c.png"),
        ("a_second", "character02", "a.png"),
        ("m_third", "character03", "b.png"),
    ):
        drawing = sorted((alphabet / name).glob("*.png"))[0]
        (mapped / folder).mkdir(parents=True)
        shutil.copy(drawing, mapped / folder / drawing.name)
        shutil.copy(drawing, copies / file)
        expected[str(copies / file)] = folder
    exact = predict(run, mapped, copies, steps=10, device="cpu")
    assert {f: c for f, c, _ in exact} == expected
    assert all(p > 0.5 for _, _, p in exact)
    out_csv = tmp_path / "predictions.csv"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            adapt_main,
            [
                str(run),
                "--support",
                str(support),
                "--query",
                str(query),
                "--output",
                str(out_csv),
                "--device",
                "cpu",
            ],
        )
    assert exit_info.value.code == 0
    err = capsys.readouterr().err.splitlines()  # the command shows them
    assert err[:2] == [
        f"{run}: trained for 4 of 4 iterations",
        "adapting on 3 images of 3 classes (3 steps), then classifying 6 images",
    ]
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "file,class,probability" and len(lines) == 1 + len(rows)
    (support / "my_fourth").mkdir()
    assert cli(adapt_main, [str(run), "--support", str(support), "--query", str(query)]) == 2
    assert "has 4 classes; the model was trained 3-way" in capsys.readouterr().err


def test_train_cli_needs_a_data_path_for_omniglot(capsys):
    from tests.test_sinusoid import run_train

    assert run_train(["--task", "omniglot"]) == 2
    assert "--task omniglot needs --data PATH" in capsys.readouterr().err
