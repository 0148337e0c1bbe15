"""Do the dependency ranges install from wheels on every platform the README names?

For Linux x86-64, Linux aarch64 and macOS arm64, with Python 3.11 and 3.12:

1. `uv pip compile --python-platform <target>` resolves pyproject.toml (the `dev` extra included)
   with every environment marker evaluated for the target (pip evaluates the markers of
   transitive dependencies for the machine it runs on, so from Linux it would ask a Mac for
   xgboost's Linux-only nvidia-nccl);
2. `pip install --dry-run --only-binary=:all: --platform <target tags> --no-deps` then checks
   that every pinned package has a wheel for the target.

A dependency published only as a source archive (`promise` and `jsonpath-rw`, which
tensorflow-datasets and mlcroissant need) is accepted only if it builds a pure-Python wheel
(`py3-none-any`), which installs on every platform. Prints one line per target; exits 1 if any
fails. Needs the package index (CI runs it after installing).
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGETS = {  # name -> (uv --python-platform, pip --platform tags)
    'linux-x86_64': ('x86_64-manylinux_2_28', ['manylinux_2_28_x86_64', 'manylinux_2_27_x86_64',
                                               'manylinux_2_17_x86_64', 'manylinux2014_x86_64']),
    'linux-aarch64': ('aarch64-manylinux_2_28', ['manylinux_2_28_aarch64', 'manylinux_2_27_aarch64',
                                                 'manylinux_2_17_aarch64', 'manylinux2014_aarch64']),
    'macos-arm64': ('aarch64-apple-darwin', ['macosx_14_0_arm64', 'macosx_13_0_arm64',
                                             'macosx_12_0_arm64', 'macosx_11_0_arm64']),
}
PYTHONS = ('3.11', '3.12')


def pure_wheel(name: str, wheelhouse: str) -> bool:
  """Builds `name` from its source archive into `wheelhouse`; True if the wheel is pure Python."""
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-binary',
                  name, '-w', wheelhouse, name], capture_output=True, check=False)
  prefix = re.sub(r'[-.]', '_', name.lower()) + '-'
  return any(p.name.lower().startswith(prefix) and p.name.endswith('-none-any.whl')
             for p in pathlib.Path(wheelhouse).glob('*.whl'))


def compile_for(uv_platform: str, python: str, pure: list[str], out: str, tmp: str):
  """`uv pip compile` for one target; its temporary files (uv leaves a lock file per source
  build there) go in `tmp`, which is removed at the end."""
  return subprocess.run(
      ['uv', 'pip', 'compile', str(ROOT / 'pyproject.toml'), '--extra', 'dev', '--quiet',
       '--python-platform', uv_platform, '--python-version', python, '--only-binary', ':all:',
       *[a for p in pure for a in ('--no-binary', p)], '--output-file', out],
      capture_output=True, text=True, check=False, env={**os.environ, 'TMPDIR': tmp})


def wheels_exist(pinned: str, python: str, tags: list[str], wheelhouse: str):
  return subprocess.run(
      [sys.executable, '-m', 'pip', 'install', '--dry-run', '--quiet', '--ignore-installed',
       '--no-deps', '--only-binary=:all:', '--implementation', 'cp', '--python-version', python,
       '--find-links', wheelhouse, *[a for t in tags for a in ('--platform', t)], '-r', pinned],
      capture_output=True, text=True, check=False)


def main() -> int:
  failed = 0
  with tempfile.TemporaryDirectory() as tmp:
    wheelhouse, pure = f'{tmp}/wheels', []
    for name, (uv_platform, tags) in TARGETS.items():
      for python in PYTHONS:
        pinned = f'{tmp}/{name}-{python}.txt'
        while True:
          result = compile_for(uv_platform, python, pure, pinned, tmp)
          no_wheels = [n for n in re.findall(r'versions of ([A-Za-z0-9_.-]+) have no usable wheels',
                                             result.stderr) if n not in pure]
          if result.returncode == 0 or not no_wheels or not all(pure_wheel(n, wheelhouse)
                                                                 for n in no_wheels):
            break
          pure += no_wheels
        if result.returncode == 0:
          result = wheels_exist(pinned, python, tags, wheelhouse)
        lines = [l.strip() for l in (result.stderr + result.stdout).splitlines()
                 if l.strip() and not l.startswith('WARNING')]
        count = sum(1 for l in open(pinned) if re.match(r'^[A-Za-z0-9]', l)) if result.returncode == 0 else 0
        print(f'{name} python {python}: ' + (f'ok, {count} packages' if result.returncode == 0
                                            else 'FAILED ' + ' | '.join(lines[-3:])), flush=True)
        failed += result.returncode != 0
  if pure:
    print(f'pure-Python source-only packages, built once: {", ".join(pure)}')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
