"""Argument checks every model family shares; each error says what it received.

Example:

>>> check_num_classes(1)
Traceback (most recent call last):
...
ValueError: num_classes must be an integer of at least 2. Received: num_classes=1
>>> resolve_class_names(None, 3)
('class_0', 'class_1', 'class_2')
"""


def check_positive_int(name, value, minimum=1):
    """Raises ValueError unless `value` is an int (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}. Received: {name}={value!r}")


def check_num_classes(num_classes):
    """Raises ValueError unless `num_classes` is an int of at least 2."""
    check_positive_int("num_classes", num_classes, minimum=2)


def check_dropout(dropout):
    """Raises ValueError unless `dropout` is a number in [0, 1)."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1). Received: dropout={dropout!r}")


def resolve_class_names(class_names, num_classes):
    """`class_names` checked against `num_classes` as a tuple; None gives `("class_0", ...)`."""
    if class_names is None:
        return tuple(f"class_{i}" for i in range(num_classes))
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise ValueError(f"class_names must be a list of strings. Received: class_names={class_names!r}")
    class_names = tuple(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have num_classes={num_classes} entries. "
            f"Received: {len(class_names)} class names {list(class_names)}"
        )
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be unique. Received: class_names={list(class_names)}")
    return class_names
