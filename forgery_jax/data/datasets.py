"""Finding, building and opening the TFDS datasets of forgery_jax.

Reading never imports TensorFlow: a prepared dataset is opened with
`as_data_source` (array_record). Building may use TensorFlow, so `ensure_built`
runs it in a child process (`python -m forgery_jax.data.datasets build ...`) and the
training process stays free of it. TFDS writes into a temporary folder and
renames it when complete, so a failed build never leaves a dataset that looks
finished; processes that need one dataset at once build it once (a lock in the data_dir), and
the build that holds the lock removes what a build killed outright left unfinished.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax.data import build_lock

BUILDERS_PACKAGE = 'tfds_builders'


class DatasetError(RuntimeError):
  """A dataset could not be found, built or read; the message says which and why."""


def dataset_names() -> list[str]:
  """The datasets there are builders for (the folders of tfds_builders/)."""
  root = os.path.dirname(importlib.import_module(BUILDERS_PACKAGE).__file__)
  return sorted(d for d in os.listdir(root)
                if not d.startswith(('_', '.')) and os.path.isdir(os.path.join(root, d)))


def builder_class(name: str, what: str = 'config.dataset.name'):
  """Imports `tfds_builders.<name>` (registering it with TFDS) and returns its Builder.

  `what`: how the caller's user names the dataset, for the error.
  """
  try:
    module = importlib.import_module(f'{BUILDERS_PACKAGE}.{name}')
  except ModuleNotFoundError as e:
    if e.name and e.name.startswith(f'{BUILDERS_PACKAGE}.{name}'):
      raise DatasetError(f'unknown dataset {name!r}: {what} must be one of {dataset_names()}') from e
    raise
  return module.Builder


def check_builder_config(name: str, builder_config: str, what: str = 'config.dataset.name'):
  """The BuilderConfig `builder_config` of dataset `name`; one clear error if it has none."""
  configs = builder_class(name, what).BUILDER_CONFIGS
  for c in configs:
    if c.name == builder_config:
      return c
  raise DatasetError(f'dataset {name!r} has no builder config {builder_config!r}; '
                     f'it has {[c.name for c in configs]}')


def builder_config_name(name: str, resolution: int, builder_config: str | None = None,
                        what: str = 'config.dataset.name') -> str:
  """The BuilderConfig to use: the one named, else the first at `resolution` (`what`: how the
  caller's user names the dataset, for the errors)."""
  configs = builder_class(name, what).BUILDER_CONFIGS
  if builder_config:
    chosen = check_builder_config(name, builder_config, what)
    if chosen.resolution is not None and chosen.resolution != resolution:
      raise DatasetError(f'{name}/{builder_config} is {chosen.resolution}px but '
                         f'config.dataset.resolution is {resolution}')
    return builder_config
  for c in configs:
    if getattr(c, 'resolution', None) == resolution:
      return c.name
  sides = sorted({r for r in (getattr(c, 'resolution', None) for c in configs) if r is not None})
  raise DatasetError(f'dataset {name!r} has no builder config at resolution {resolution} '
                     f'(its resolutions: {sides}); name one of {[c.name for c in configs]}')


def _data_dir(data_dir: str | None) -> str:
  return os.path.expanduser(data_dir or os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets'))


def get_builder(dataset_config) -> tfds.core.DatasetBuilder:
  """The TFDS builder for `config.dataset` (not necessarily prepared)."""
  name = dataset_config.name
  builder_class(name)  # registers it
  cfg = builder_config_name(name, dataset_config.resolution, dataset_config.builder_config)
  return tfds.builder(f'{name}/{cfg}', data_dir=_data_dir(dataset_config.data_dir))


def build(name: str, config_name: str, data_dir: str | None, manual_dir: str | None, *,
          lock_held: bool = False) -> None:
  """Prepares one dataset as array_record (this may import TensorFlow).

  Both names are checked first, so that a missing or misspelt one is one line listing the choices.
  It builds under the dataset's build lock (`lock_held`: the caller holds it, as `ensure_built`
  does for its child), so that a build started beside another one waits for it and then finds
  the dataset ready.
  """
  if not name:
    raise DatasetError(f'--name is required: one of {dataset_names()}')
  if not config_name:
    configs = [c.name for c in builder_class(name, '--name').BUILDER_CONFIGS]
    raise DatasetError(f'--builder_config is required: dataset {name!r} has {configs}')
  check_builder_config(name, config_name, '--name')
  for flag, path in (('data_dir', _data_dir(data_dir)), ('manual_dir', manual_dir)):
    if path and os.path.exists(path) and not os.path.isdir(path):
      raise DatasetError(f'{flag} {path} is a file, not a folder')
  builder = tfds.builder(f'{name}/{config_name}', data_dir=_data_dir(data_dir))
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
  try:
    # The builder waits for the build lock itself (`build_lock.LockedBuild`), unless held here.
    with build_lock.held_by_caller(builder) if lock_held else contextlib.nullcontext():
      builder.download_and_prepare(file_format='array_record', download_config=download_config)
  except RuntimeError as e:  # array_record's failed write (a full disk): its message names the file
    raise DatasetError(f'building {name}/{config_name} failed: {e}') from e
  check_readable(builder)


def ensure_built(dataset_config) -> tfds.core.DatasetBuilder:
  """Builds the dataset in a child process if it is not prepared yet; returns its builder."""
  builder = get_builder(dataset_config)
  if not builder.is_prepared():
    with build_lock.held(builder):  # runs started side by side build it once
      builder = _build_in_child(dataset_config)
  return check_readable(builder)


def check_readable(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
  """The builder of a prepared dataset that can be read at random (array_record); a dataset
  `tfds build` wrote in its default format (TFRecord) is one error line that says what to do."""
  file_format = builder.info.file_format
  if file_format is not None and file_format.value != 'array_record':
    raise DatasetError(
        f'{builder.data_dir}: built as {file_format.value} (tfds build without '
        f'--file_format=array_record); forgery_jax reads array_record only: remove that folder and '
        f'build it again (the same command does), or give another data_dir')
  return builder


def _build_in_child(dataset_config) -> tfds.core.DatasetBuilder:
  """`build` in a child process, unless the process that held the lock before has built it."""
  builder = get_builder(dataset_config)
  if builder.is_prepared():
    return builder
  cmd = [sys.executable, '-m', 'forgery_jax.data.datasets', 'build',
         f'--name={dataset_config.name}', f'--builder_config={builder.builder_config.name}',
         f'--data_dir={_data_dir(dataset_config.data_dir)}',
         f'--manual_dir={dataset_config.manual_dir or ""}']
  logging.info('Building %s into %s', builder.info.full_name, builder.data_dir)
  # It ends with this process: a run killed outright left its build going, unguarded by the lock,
  # and the same command started again built beside it and failed renaming onto its result.
  result = subprocess.run(cmd, check=False,
                          env={**os.environ, runtime.PARENT_ENV: str(os.getpid())})
  if result.returncode != 0:
    raise DatasetError(f'building {builder.info.full_name} failed (exit {result.returncode}); '
                       'the error is printed above')
  builder = get_builder(dataset_config)
  if not builder.is_prepared():
    raise DatasetError(f'{builder.info.full_name} still not prepared in {builder.data_dir} after build')
  return builder


def preparation(builder: tfds.core.DatasetBuilder):
  """How the builder config made its planes (`forgery_jax.data.preparation.Preparation`)."""
  return builder.builder_config.preparation


def data_sources(builder: tfds.core.DatasetBuilder) -> dict:
  """Random-access sources for every split of a prepared dataset."""
  return {split: builder.as_data_source(split) for split in builder.info.splits}


def _main(argv):
  if len(argv) != 2 or argv[1] != 'build':
    raise app.UsageError('usage: python -m forgery_jax.data.datasets build --name=... --builder_config=...')
  runtime.quiet_libraries()
  runtime.home_in_flags()
  started_by_run = os.environ.get(runtime.PARENT_ENV) == str(os.getppid())  # `ensure_built`'s
  if started_by_run:
    runtime.exit_with_parent(graceful=True)  # TFDS removes its unfinished folder on the way out
  runtime.import_tensorflow_quietly()  # building imports it; its start-up lines are noise here
  f = flags.FLAGS
  try:
    build(f.name, f.builder_config, f.data_dir, f.manual_dir, lock_held=started_by_run)
  except (DatasetError, ValueError, OSError) as e:
    # ValueError / OSError: a missing or malformed release, or an unreadable file; the message names it.
    progress.exit_with_error(e)
  except KeyboardInterrupt:  # Ctrl-C, or the run that started the build is gone
    progress.exit_interrupted(f'{f.name}/{f.builder_config} was not built (nothing of it is kept)')


if __name__ == '__main__':
  # Defined here, not at import: the library must not claim flag names of the programs using it.
  flags.DEFINE_string('name', None, 'Dataset (a folder of tfds_builders/).')
  flags.DEFINE_string('builder_config', None, 'BuilderConfig name.')
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir.')
  flags.DEFINE_string('manual_dir', None, 'Folder with the release files.')
  app.run(_main)
