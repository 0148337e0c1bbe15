"""What a user would run instead: the papers' recipes, written from their descriptions.

These live here only, as the baselines of `benchmarks.run`; forgery_jax never calls them.
"""

from __future__ import annotations

import io
import os
import tempfile

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageEnhance

from forgery_jax import runtime
from forgery_jax.forensics import srm


def paper_ela(image: Image.Image, quality: int = 90) -> Image.Image:
  """The dual-branch paper's ELA: save to a temporary JPEG on disk, reopen, difference, brighten."""
  fd, path = tempfile.mkstemp(suffix='.jpg')
  os.close(fd)
  try:
    image.save(path, 'JPEG', quality=quality)
    with Image.open(path) as resaved:
      diff = ImageChops.difference(image, resaved)
    extrema = diff.getextrema()
    peak = max(e[1] for e in extrema) or 1
    return ImageEnhance.Brightness(diff).enhance(255.0 / peak)
  finally:
    os.remove(path)


def jpeg_codecs() -> dict:
  """Encode + decode round trips of every JPEG codec installed, for the ELA floor."""
  codecs = {}

  def pil(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, 'JPEG', quality=90)
    buf.seek(0)
    return np.asarray(Image.open(buf))

  def opencv(rgb):
    ok, buf = cv2.imencode('.jpg', rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)

  codecs['pil'] = pil
  codecs['opencv'] = opencv
  try:
    import simplejpeg  # pylint: disable=g-import-not-at-top
    codecs['simplejpeg'] = lambda rgb: simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(rgb, quality=90))
  except ImportError:
    pass
  return codecs


def paper_srm(rgb: np.ndarray, clip: float = 3.0) -> np.ndarray:
  """The paper's SRM: 30 kernels x 3 channels of cv2.filter2D on the uint8 image, averaged, clipped."""
  kernels = srm.srm_kernels()[:, :, 0, :]
  out = np.zeros(rgb.shape, np.float32)
  for c in range(3):
    channel = rgb[..., c]
    for k in range(kernels.shape[-1]):
      out[..., c] += cv2.filter2D(channel, cv2.CV_32F, kernels[..., k], borderType=cv2.BORDER_CONSTANT)
  return np.clip(out / kernels.shape[-1], -clip, clip) / clip


def keras_model(resolution: int = 128, num_classes: int = 2):
  """The paper's dual-branch network in Keras 3 (TensorFlow backend), compiled with Adam 1e-3.

  As in the paper, the SRM residual is an input computed outside the model.
  """
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  runtime.import_tensorflow_quietly()
  import keras  # pylint: disable=g-import-not-at-top

  def branch(x):
    x = keras.layers.Conv2D(32, 3, padding='same', activation='relu')(x)
    x = keras.layers.Conv2D(32, 3, padding='same', activation='relu')(x)
    return keras.layers.MaxPooling2D(2)(x)

  ela_in = keras.Input((resolution, resolution, 3))
  srm_in = keras.Input((resolution, resolution, 3))
  x = keras.layers.Concatenate()([branch(ela_in), branch(srm_in)])
  x = keras.layers.Dropout(0.25)(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(256, activation='relu')(x)
  x = keras.layers.Dropout(0.5)(x)
  out = keras.layers.Dense(num_classes, activation='softmax')(x)
  model = keras.Model([ela_in, srm_in], out)
  model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='sparse_categorical_crossentropy')
  return model


def keras_inference(paths: list[str], model, resolution: int = 128, batch: int = 32):
  """The paper's inference: per file decode (PIL), ELA through a temporary JPEG, both planes
  resized to the model's input (bicubic), SRM by the 30 x 3 filter2D loop, then the Keras model on
  batches. Returns the class probabilities."""
  out = []
  for lo in range(0, len(paths), batch):
    elas, residuals = [], []
    for path in paths[lo:lo + batch]:
      with Image.open(path) as im:
        rgb = im.convert('RGB')
      ela = paper_ela(rgb).resize((resolution, resolution), Image.BICUBIC)
      small = np.asarray(rgb.resize((resolution, resolution), Image.BICUBIC))
      elas.append(np.asarray(ela, np.float32) / 255.0)
      residuals.append(paper_srm(small))
    out.append(model.predict([np.stack(elas), np.stack(residuals)], verbose=0))
  return np.concatenate(out)
