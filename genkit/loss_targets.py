"""The target id that next-token losses skip (F.cross_entropy's ignore_index): the positions past
a text's end in its last window, a pair's prompt when only the completion is learned, padding.
A leaf, because the data modules that write targets and the models that read them both need it."""

IGNORE_INDEX = -1
