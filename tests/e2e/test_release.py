"""What scripts/release makes, checked as a user would receive it: the checksums, the CLI archive
(its layout, `keyturn --version`, the glibc it needs, a rotation with the unpacked binary), the
function's zip (its bootstrap driven through the runtime API for one rotation), the template for the
Serverless Application Repository and the example that deploys it, and the crates' metadata.

scripts/test runs scripts/release first and names its output in KEYTURN_RELEASE_ARTIFACTS, and
points KEYTURN_BIN and KEYTURN_LAMBDA_BIN at the unpacked archive and zip, so every end-to-end test
runs the released binaries. Without a release (a plain pytest run) these tests are skipped."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
import uuid
import zipfile
from pathlib import Path

import pytest
from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

from harness import ROOT, auth_off, base_env
from test_template import _NoManagedPolicies, create_stack
from test_rotation_function import key_statuses, make_user, run_steps, start_rotation, unique, value, whoami

ARTIFACTS = Path(os.environ["KEYTURN_RELEASE_ARTIFACTS"]) if os.environ.get("KEYTURN_RELEASE_ARTIFACTS") else None
pytestmark = pytest.mark.skipif(ARTIFACTS is None, reason="no release: run scripts/release and set KEYTURN_RELEASE_ARTIFACTS (scripts/test does)")

VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
TRIPLE = "x86_64-unknown-linux-gnu"
CLI_ARCHIVE = f"keyturn-{VERSION}-{TRIPLE}.tar.gz"
FUNCTION_ZIP = f"keyturn-rotation-{VERSION}-x86_64.zip"


def sums() -> dict[str, str]:
    lines = (ARTIFACTS / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def glibc_needed(binary: bytes) -> tuple[int, ...]:
    """The highest GLIBC_x.y symbol version the binary names (its dynamic string table)."""
    found = {tuple(int(p) for p in m.decode().split(".")) for m in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)\x00", binary)}
    assert found, "no GLIBC_ symbol version in the binary: not a dynamically linked glibc binary?"
    return max(found)


def test_checksums_cover_every_artifact_and_match():
    listed = sums()
    assert set(listed) == {CLI_ARCHIVE, FUNCTION_ZIP, "template.yaml"} | {
        n for n in listed if "aarch64" in n or n.endswith("-arm64.zip")
    }
    for name, digest in listed.items():
        assert hashlib.sha256((ARTIFACTS / name).read_bytes()).hexdigest() == digest, name
    unlisted = {p.name for p in ARTIFACTS.iterdir()} - set(listed) - {"SHA256SUMS", "README.md", "LICENSE"}
    assert not unlisted, f"artifacts without a checksum: {unlisted}"


def test_cli_archive_holds_the_binary_and_its_docs(keyturn_binary):
    with tarfile.open(ARTIFACTS / CLI_ARCHIVE) as tar:
        members = {m.name: m for m in tar.getmembers()}
        top = f"keyturn-{VERSION}-{TRIPLE}"
        assert set(members) == {f"{top}/{n}" for n in ("keyturn", "README.md", "LICENSE", "CHANGELOG.md")}
        assert members[f"{top}/keyturn"].mode & 0o111 == 0o111
        packed = tar.extractfile(f"{top}/keyturn").read()
        assert tar.extractfile(f"{top}/LICENSE").read() == (ROOT / "LICENSE").read_bytes()
    # The end-to-end tests run this very binary, unpacked.
    assert keyturn_binary.read_bytes() == packed, f"KEYTURN_BIN ({keyturn_binary}) is not the archive's keyturn"
    assert glibc_needed(packed) <= (2, 17), f"the CLI needs glibc {glibc_needed(packed)}, more than 2.17"


def test_version_names_the_version_commit_and_build_date(keyturn_binary):
    out = subprocess.run([str(keyturn_binary), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    m = re.fullmatch(rf"keyturn {re.escape(VERSION)} \(([0-9a-f]{{12}}|unknown) (\d{{4}}-\d{{2}}-\d{{2}})\)", out)
    assert m, out
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert head.stdout.strip().startswith(m.group(1)), f"{out} is not this checkout's HEAD {head.stdout.strip()}"


def test_the_released_cli_rotates_a_key(moto, keyturn, secrets_seen):
    user = unique("released")
    old = make_user(moto, user, secrets_seen)
    secret_id = f"keyturn/{user}"
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
    )
    out = json.loads(keyturn("--output", "json", "rotate", secret_id).stdout)
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] != old["AccessKeyId"], out
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
    assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == old["AccessKeyId"]


def test_function_zip_bootstrap_rotates_through_the_runtime_api(moto, function_factory, lambda_binary, secrets_seen):
    with zipfile.ZipFile(ARTIFACTS / FUNCTION_ZIP) as z:
        assert z.namelist() == ["bootstrap"]
        info = z.getinfo("bootstrap")
        assert (info.external_attr >> 16) & 0o111, "bootstrap is not executable in the zip"
        bootstrap = z.read("bootstrap")
    assert lambda_binary.read_bytes() == bootstrap, f"KEYTURN_LAMBDA_BIN ({lambda_binary}) is not the zip's bootstrap"
    assert glibc_needed(bootstrap) <= (2, 34), "provided.al2023 has glibc 2.34"

    user, secret_id = unique("zipped"), unique("keyturn/zipped")
    old = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
    )
    token = start_rotation(moto, secret_id)
    fn = function_factory()
    run_steps(fn, secret_id, token)
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] != old["AccessKeyId"]
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}
    start = [json.loads(l) for l in fn.output().splitlines() if l.startswith("{") and "keyturn-rotation starting" in l]
    assert start and start[0]["version"] == VERSION and re.fullmatch(r"[0-9a-f]{12}|unknown", start[0]["commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", start[0]["built"])


def sar_metadata(template: dict) -> dict:
    return template["Metadata"]["AWS::ServerlessRepo::Application"]


def test_sar_template_is_the_source_template_with_the_release_zip():
    released = decode_str((ARTIFACTS / "template.yaml").read_text())[0]
    source = decode_str((ROOT / "deploy" / "template.yaml").read_text())[0]
    meta = sar_metadata(released)
    assert meta["SemanticVersion"] == VERSION
    assert meta["SpdxLicenseId"] == "Apache-2.0"
    assert re.fullmatch(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?", meta["Author"])
    assert re.fullmatch(r"[a-zA-Z0-9\-]+", meta["Name"]) and 1 <= len(meta["Description"]) <= 256
    assert len(meta["Labels"]) <= 10 and all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]+", l) for l in meta["Labels"])
    for field in ("LicenseUrl", "ReadmeUrl"):
        assert (ARTIFACTS / meta[field]).read_bytes() == (ROOT / Path(meta[field]).name).read_bytes()
    function = released["Resources"]["RotationFunction"]
    assert function["Properties"]["CodeUri"] == FUNCTION_ZIP and "BuildMethod" not in function.get("Metadata", {})
    # Everything else is the source template's.
    assert released["Parameters"] == source["Parameters"] and released["Outputs"] == source["Outputs"]
    assert set(released["Resources"]) == set(source["Resources"])


def test_the_release_packages_for_the_repository_and_deploys_from_its_zip(moto, tmp_path):
    """What the release workflow's `sam package` does, against moto's S3: the zip, the licence and
    the README uploaded and named in the template; then that packaged template deployed by
    CloudFormation (the SAM transform as CloudFormation runs it), whose function's code is the
    release zip, byte for byte."""
    if shutil.which("sam") is None:
        pytest.skip("the SAM CLI is not on PATH (scripts/tools installs it)")
    for f in ARTIFACTS.iterdir():
        shutil.copyfile(f, tmp_path / f.name)
    bucket = f"keyturn-release-{uuid.uuid4().hex[:8]}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    env = base_env(moto.endpoint, *moto.admin)
    env["SAM_CLI_TELEMETRY"] = "0"
    proc = subprocess.run(["sam", "package", "--template-file", "template.yaml", "--s3-bucket", bucket,
                           "--output-template-file", "packaged.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    packaged = decode_str((tmp_path / "packaged.yaml").read_text())[0]

    def uploaded(url: str) -> bytes:
        assert url.startswith(f"s3://{bucket}/"), url
        return s3.get_object(Bucket=bucket, Key=url.split("/", 3)[3])["Body"].read()

    meta = sar_metadata(packaged)
    assert uploaded(meta["LicenseUrl"]) == (ROOT / "LICENSE").read_bytes()
    assert uploaded(meta["ReadmeUrl"]) == (ROOT / "README.md").read_bytes()
    release_zip = (ARTIFACTS / FUNCTION_ZIP).read_bytes()
    assert uploaded(packaged["Resources"]["RotationFunction"]["Properties"]["CodeUri"]) == release_zip

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    body = json.dumps(transform(packaged, {}, _NoManagedPolicies()), default=str)
    resources = create_stack(moto, f"keyturn-{uuid.uuid4().hex[:8]}", body, {}, ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    with auth_off(moto):  # moto's signature check fails Lambda's GET calls (harness.auth_off)
        config = moto.client("lambda").get_function_configuration(FunctionName=resources["RotationFunction"])
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(release_zip).digest()).decode()
    assert config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap"


def test_from_sar_example_passes_every_parameter_through():
    source = decode_str((ROOT / "deploy" / "template.yaml").read_text())[0]
    example = decode_str((ROOT / "deploy" / "examples" / "from-sar.yaml").read_text())[0]
    assert example["Parameters"] == source["Parameters"], "from-sar.yaml's parameters drifted from the template's"
    app = example["Resources"]["Keyturn"]
    assert app["Type"] == "AWS::Serverless::Application"
    assert app["Properties"]["Location"]["SemanticVersion"] == VERSION
    assert app["Properties"]["Location"]["ApplicationId"].endswith(":applications/" + sar_metadata(source)["Name"])
    passed = app["Properties"]["Parameters"]
    assert set(passed) == set(source["Parameters"])
    for name, spec in source["Parameters"].items():
        expected = {"Fn::Join": [",", {"Ref": name}]} if spec["Type"] == "CommaDelimitedList" else {"Ref": name}
        assert passed[name] == expected, name
    assert set(example["Outputs"]) == set(source["Outputs"])


def test_every_crate_declares_what_crates_io_needs():
    meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"], cwd=ROOT,
                                     capture_output=True, text=True, check=True).stdout)
    published = {}
    for package in meta["packages"]:
        assert package["license"] == "Apache-2.0", package["name"]
        assert package["version"] == VERSION, package["name"]
        for field in ("description", "repository", "readme", "homepage"):
            assert package.get(field), f"{package['name']} has no {field}"
        assert package["keywords"] and package["categories"], package["name"]
        assert (Path(package["manifest_path"]).parent / package["readme"]).exists()
        published[package["name"]] = package["publish"] != []
    assert published == {"keyturn-core": True, "keyturn-aws": True, "keyturn": True, "keyturn-lambda": False}


def test_changelog_has_this_versions_notes():
    notes = subprocess.run([str(ROOT / "scripts" / "release"), "--notes", VERSION], capture_output=True, text=True, check=True).stdout
    assert "### Added" in notes
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
