"""fewtune.params: param()'s metadata and the checks read from it."""

import dataclasses
from typing import ClassVar

import pytest

from fewtune.errors import FewtuneError
from fewtune.params import Params, field_limits, param


@dataclasses.dataclass
class Limited(Params):
    passes: int = param(4, "passes over the texts", minimum=1)
    rate: float = param(0.1, "a rate", above=0)
    share: float = param(0.5, "a share", minimum=0, maximum=1)
    decay: float = param(0.0, "a decay", minimum=0)
    head: str = param("a", "which head", choices=("a", "b"))
    free: int = param(-3, "no limits")


@dataclasses.dataclass
class Ordered(Params):
    problems_in_field_order: ClassVar[bool] = True
    lr: float = param(1e-3, "no limits of its own, whatever its name")
    epochs: int = param(5, "limits of its own", minimum=5)
    mode: str = param("a", "checked by check")

    def check(self, problems: list[str]) -> None:
        if self.mode != "a":
            problems.append(f"mode must be 'a', got {self.mode!r}")


def test_param_keeps_help_and_only_the_limits_given():
    fields = {f.name: f for f in dataclasses.fields(Limited)}
    assert Limited.help()["passes"] == "passes over the texts"
    assert dict(fields["passes"].metadata) == {"help": "passes over the texts", "minimum": 1}
    assert dict(fields["free"].metadata) == {"help": "no limits"}
    assert field_limits(fields["share"]) == {"minimum": 0, "maximum": 1}


def test_a_list_or_dict_default_is_copied_per_instance():
    @dataclasses.dataclass
    class Mutable:
        items: list = param([1], "a list")
        table: dict = param({"a": 1}, "a dict")

    a, b = Mutable(), Mutable()
    assert a.items == [1] and a.table == {"a": 1}
    assert a.items is not b.items and a.table is not b.table


@pytest.mark.parametrize(("values", "message"), [
    ({"passes": 0}, "passes must be at least 1, got 0"),
    ({"rate": 0}, "rate must be positive, got 0"),
    ({"share": 1.5}, "share must be between 0 and 1, got 1.5"),
    ({"decay": -1}, "decay must not be negative, got -1"),
    ({"head": "c"}, "head must be 'a' or 'b', got 'c'"),
])
def test_each_limit_names_the_value(values, message):
    with pytest.raises(FewtuneError, match="^Limited: " + message.replace("(", r"\(") + "$"):
        Limited(**values)


def test_every_violation_is_named_at_once_and_values_inside_pass():
    Limited(passes=1, rate=1e-9, share=1, decay=0, head="b", free=-100)
    with pytest.raises(FewtuneError) as e:
        Limited(passes=0, rate=-1, head="z")
    assert str(e.value) == ("Limited: passes must be at least 1, got 0; rate must be positive, got -1; "
                            "head must be 'a' or 'b', got 'z'")


def test_only_declared_limits_apply_and_problems_can_follow_the_fields_order():
    assert field_limits({f.name: f for f in dataclasses.fields(Ordered)}["lr"]) == {}
    Ordered(lr=0)  # no limits of its own: any value, even for a name like lr
    with pytest.raises(FewtuneError) as e:
        Ordered(epochs=4, mode="b")
    # check's problem (mode) and the limits' (epochs), in the order the fields are declared.
    assert str(e.value) == "Ordered: epochs must be at least 5, got 4; mode must be 'a', got 'b'"
