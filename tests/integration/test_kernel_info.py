"""kernel_info_reply."""

import pytest

import harness


@pytest.fixture
def info(kernel):
    x = kernel.kernel_info().ok()
    return x.content


def test_kernel_info_reply_protocol_version(info):
    assert info["protocol_version"] == "5.3"


@pytest.mark.skipif(harness.is_ipykernel(), reason="ipykernel is not ferry")
def test_kernel_info_names_ferry_implementation(info):
    assert info["implementation"] == "ferry"
    assert isinstance(info["implementation_version"], str) and info["implementation_version"]


def test_kernel_info_language_info_describes_python(kernel, info):
    li = info["language_info"]
    version = kernel.execute("import platform\nplatform.python_version()").ok().text
    assert li["name"] == "python"
    assert repr(li["version"]) == version
    assert li["mimetype"] == "text/x-python"
    assert li["file_extension"] == ".py"
    assert li["pygments_lexer"] in ("ipython3", "python3")
    cm = li["codemirror_mode"]
    if isinstance(cm, dict):
        assert cm["name"] in ("ipython", "python") and cm.get("version") == 3
    else:
        assert cm in ("ipython", "python")
    assert li["nbconvert_exporter"] == "python"


def test_kernel_info_has_banner_and_help_links(info):
    assert isinstance(info["banner"], str) and info["banner"].strip()
    links = info["help_links"]
    assert isinstance(links, list)
    for link in links:
        assert set(link) >= {"text", "url"}, link


@pytest.mark.ferry_only("ipykernel 6.17 leaves the key out")
def test_kernel_info_reports_no_debugger(info):
    assert info.get("debugger") is False
