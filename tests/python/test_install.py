"""cmake --install puts an importable package where the system interpreter looks."""

import os
import subprocess

BUILD_DIR = os.environ.get("MDSHM_BUILD_DIR", "")


def test_installed_package_imports_with_the_system_python(tmp_path):
    assert BUILD_DIR and os.path.isfile(os.path.join(BUILD_DIR, "CMakeCache.txt")), "MDSHM_BUILD_DIR (ctest sets it)"
    env = dict(os.environ, DESTDIR=str(tmp_path))
    subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", "/usr", "--component", "python"], env=env,
                   check=True, capture_output=True)
    found = [root for root, _, files in os.walk(tmp_path) if "__init__.py" in files and root.endswith("mdshm")]
    assert len(found) == 1, found
    site = os.path.dirname(found[0])
    rel = os.path.relpath(site, tmp_path)
    # The directory is one the system interpreter searches (without the DESTDIR prefix).
    paths = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('\\n'.join(sys.path))"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert "/" + rel in paths, f"/{rel} is not on /usr/bin/python3's sys.path"
    out = subprocess.run(["/usr/bin/python3", "-c", "import mdshm; print(mdshm.__file__, mdshm.dtype.itemsize)"],
                         env=dict(os.environ, PYTHONPATH=site), capture_output=True, text=True, check=True).stdout
    assert out.startswith(os.path.join(site, "mdshm")) and out.split()[1] == "112"
