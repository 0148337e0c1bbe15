"""Class names shared by every dataset, builder and metric: one place for them."""

AUTHENTIC, COPY_MOVE, SPLICING = 'authentic', 'copy_move', 'splicing'
FORGERY_TYPES = (AUTHENTIC, COPY_MOVE, SPLICING)  # the 3-class task; index 0 is authentic
BINARY_LABELS = (AUTHENTIC, 'tampered')           # the 2-class task
