import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def float64():
    """float64 as the default dtype for one test (restored after it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def symtrain_cache(tmp_path_factory):
    """``$SYMTRAIN_CACHE`` pointed at one temporary folder for the session (generated
    datasets are cached there, not in the user's cache)."""
    import os

    old = os.environ.get("SYMTRAIN_CACHE")
    os.environ["SYMTRAIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ["SYMTRAIN_CACHE"]
    if old is None:
        os.environ.pop("SYMTRAIN_CACHE")
    else:
        os.environ["SYMTRAIN_CACHE"] = old


@pytest.fixture(scope="session")
def ray_one_cpu():
    """One local Ray instance with one CPU for the whole session: the tests that send work
    through Ray share its start and its worker (each start is tens of seconds on a loaded
    machine). ``run_sweep`` joins an instance already running and leaves it running."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
