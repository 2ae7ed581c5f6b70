"""One module per chapter notebook, named like it: the tables, figures and checks of that chapter.

``chapters/blind_spots.py`` serves ``book/blind_spots.ipynb``. A chapter module builds on
:mod:`intriguing.artifacts` and the primitives; a notebook imports its own chapter module plus
:mod:`intriguing.plots`, :mod:`intriguing.paper` and :mod:`intriguing.profiles`, and nothing else.
"""
