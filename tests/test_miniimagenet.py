"""The MiniImageNet reader on a tiny synthetic layout."""

import pytest
import torch

from maml.run.errors import UsageError
from maml_sl.data.miniimagenet import load_miniimagenet
from maml_sl.models import conv4
from maml_sl.tasks.fewshot import FewShotTasks
from tests.miniimagenet_fixture import write_miniimagenet


@pytest.fixture(scope="module")
def mini_dir(tmp_path_factory):
    return write_miniimagenet(tmp_path_factory.mktemp("mini"))


def test_each_split_reads_into_one_rgb_tensor(mini_dir):
    train = load_miniimagenet(mini_dir, "train")
    assert train.images.shape == (4, 5, 84, 84, 3) and train.images.dtype == torch.uint8
    assert train.counts.tolist() == [5] * 4 and train.names[0] == "train/n00train000"
    assert len(load_miniimagenet(mini_dir, "test").names) == 3
    # a class's colour survives decoding and resizing
    means = train.images.float().mean(dim=(1, 2, 3))
    assert (means.max(0).values - means.min(0).values).max() > 20


def test_episodes_are_rgb_and_fit_the_conv_net(mini_dir):
    test = load_miniimagenet(mini_dir, "test")
    tasks = FewShotTasks(test.images, test.counts, ways=3)
    (xs, ys), (xq, yq) = tasks.sample(2, 1, 4, torch.Generator().manual_seed(0))
    assert xs.shape == (2, 3, 3, 84, 84) and xq.shape == (2, 12, 3, 84, 84)
    assert conv4(3, 3, filters=8, pool="max", image_size=84)(xs[0]).shape == (3, 3)


def test_cache_dir_is_used_and_data_folder_untouched(mini_dir, tmp_path):
    before = sorted(p.name for p in mini_dir.iterdir())
    first = load_miniimagenet(mini_dir, "val", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("miniimagenet-val-*.pt"))) == 1
    assert torch.equal(load_miniimagenet(mini_dir, "val", cache_dir=tmp_path).images, first.images)
    assert sorted(p.name for p in mini_dir.iterdir()) == before


def test_bad_layouts_name_what_is_missing(mini_dir, tmp_path):
    with pytest.raises(UsageError, match="has no images/ folder"):
        load_miniimagenet(tmp_path, "train")
    (tmp_path / "images").mkdir()
    with pytest.raises(UsageError, match="train.csv is missing"):
        load_miniimagenet(tmp_path, "train")
    (tmp_path / "train.csv").write_text("file,class\nx.jpg,a\n")
    with pytest.raises(UsageError, match="must start with the header 'filename,label'"):
        load_miniimagenet(tmp_path, "train")
    (tmp_path / "train.csv").write_text("filename,label\nx.jpg,a\n")
    with pytest.raises(UsageError, match="lists x.jpg, but .*images/x.jpg does not exist"):
        load_miniimagenet(tmp_path, "train")
    tasks = FewShotTasks(load_miniimagenet(mini_dir, "val").images, torch.tensor([5, 5]), ways=2)
    with pytest.raises(UsageError, match="--shots 1 plus --query 15 need 16"):
        tasks.check_sizes(1, 15)


def test_train_cli_meta_trains_miniimagenet(mini_dir, tmp_path):
    from maml.run.checkpoint import load_checkpoint
    from tests.test_sinusoid import run_train

    run = tmp_path / "run"
    args = ["--task", "miniimagenet", "--data", str(mini_dir), "--ways", "2", "--shots", "1"]
    args += ["--query", "2", "--meta-batch", "2", "--iterations", "2", "--filters", "4"]
    args += ["--log-every", "1", "--val-every", "2", "--val-tasks", "2", "--run-dir", str(run)]
    assert run_train(args) == 0
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 2
    assert state["learner"]["model.0.weight"].shape == (4, 3, 3, 3)  # RGB input, 4 filters


def test_splits_sharing_an_image_are_refused(mini_dir, tmp_path):
    import shutil

    from maml_sl.config import TrainConfig
    from maml_sl.tasks import make_task

    leaky = tmp_path / "leaky"
    shutil.copytree(mini_dir, leaky)
    train_row = (leaky / "train.csv").read_text().splitlines()[1]
    test_rows = (leaky / "test.csv").read_text().splitlines()
    copy = "copy" + train_row.split(",")[0]
    shutil.copy(leaky / "images" / train_row.split(",")[0], leaky / "images" / copy)
    test_rows[1] = f"{copy},{test_rows[1].split(',')[1]}"  # one test image is a training image
    (leaky / "test.csv").write_text("\n".join(test_rows) + "\n")
    config = TrainConfig(task="miniimagenet", data=str(leaky), ways=2, shots=1, query=2)
    with pytest.raises(UsageError, match="the test split shares images with the train split: 1 "):
        make_task(config, torch.device("cpu"))
    clean = TrainConfig(task="miniimagenet", data=str(mini_dir), ways=2, shots=1, query=2)
    make_task(clean, torch.device("cpu"))
