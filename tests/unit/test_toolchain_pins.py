import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pinned_tools() -> dict[str, str]:
    lines = (ROOT / "tools" / "versions").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))


def pinned_python_packages() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(dep.split("==") for dep in deps)


def test_python_sdks_match_the_pinned_go_binaries():
    tools, packages = pinned_tools(), pinned_python_packages()
    assert packages["pulumi"] == tools["PULUMI_VERSION"]
    assert packages["pulumi-kubernetes"] == tools["PULUMI_KUBERNETES_VERSION"]


def test_every_direct_dependency_is_pinned_exactly_and_locked():
    lock = (ROOT / "requirements.lock").read_text().lower().replace("_", "-")
    for name, version in pinned_python_packages().items():
        assert f"{name.lower()}=={version}" in lock


def test_wrapper_modules_require_the_pinned_versions():
    tools = pinned_tools()
    cli = (ROOT / "tools/go/pulumi/go.mod").read_text()
    assert f"github.com/pulumi/pulumi/pkg/v3 v{tools['PULUMI_VERSION']}" in cli
    host = (ROOT / "tools/go/language-python/go.mod").read_text()
    assert f"github.com/pulumi/pulumi/sdk/v3 v{tools['PULUMI_LANGUAGE_PYTHON_VERSION']}" in host
    k8s = (ROOT / "tools/go/kubernetes/go.mod").read_text()
    assert f"provider/v4 {tools['PULUMI_KUBERNETES_MODULE_VERSION']}" in k8s
    kube = (ROOT / "tools/go/kube-apiserver/go.mod").read_text()
    assert f"k8s.io/kubernetes v{tools['KUBE_APISERVER_VERSION']}" in kube
    assert f"go.etcd.io/etcd/server/v3 v{tools['ETCD_VERSION']}" in kube
    crictl = (ROOT / "tools/go/crictl/go.mod").read_text()
    assert f"sigs.k8s.io/cri-tools v{tools['CRICTL_VERSION']}" in crictl
