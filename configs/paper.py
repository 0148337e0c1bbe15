"""The paper's dual-branch model and training on a real release: --config=configs/paper.py:<dataset>.

<dataset> is one of casia1 (CASIA v1.0), casia2 (CASIA v2.0), comofod_small (CoMoFoD 512x512),
micc_f220, micc_f2000 (MICC) or combined (their union, three classes). Pass the release folder:
--config.dataset.manual_dir=<folder> (the dataset is built on first use). Compare casia2 with
--config.dataset.builder_config=jpeg_normalised128 to see what its TIFF bias buys.
"""

from configs import default

DATASETS = ('casia1', 'casia2', 'comofod_small', 'micc_f220', 'micc_f2000', 'combined')


def get_config(dataset: str = 'casia1'):
  if dataset not in DATASETS:
    raise ValueError(f'configs/paper.py:<dataset> takes one of {DATASETS}, got {dataset!r}')
  config = default.get_config()
  config.dataset.name = dataset
  config.dataset.builder_config = 'paper128'
  config.dataset.num_classes = 3 if dataset == 'combined' else 2
  config.num_epochs = 50  # early stopping on validation accuracy (patience 7) usually ends it
  if dataset in ('casia1', 'casia2'):
    # Authentic test files given a tampered file's JPEG history, against the same files
    # re-encoded without it: does the model read file histories?
    config.dataset.control = 'history_matched128'
    config.dataset.control_reference = 'jpeg_randomised128'
  return config
