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
