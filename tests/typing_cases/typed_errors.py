"""Mistakes mypy must catch in a typed model (tests/test_typing.py).

Each line that must fail ends with an "E:" comment giving the error code in brackets and a
text: mypy reports exactly those lines, each with that error code and a message containing
the text.  Checked, never run.
"""

from __future__ import annotations

from IndexedRedis import Field, IndexedRedisModel


class Person(IndexedRedisModel):
    KEY_NAME = "TypingPersons"
    name: str = Field(index=True)
    age: int = Field(default=0)
    nick: str | None = Field(default=None)
    wrong_default: int = Field(default="zero")  # E: [assignment] Incompatible types in assignment


p = Person(name="Ada")
print(p.nmae)  # E: [attr-defined] "Person" has no attribute "nmae"
Person(name="Ada", agee=3)  # E: [call-arg] Unexpected keyword argument "agee" for "Person"
p.age = "thirty"  # E: [assignment] (expression has type "str", variable has type "int")
Person(age=3)  # E: [call-arg] Missing named argument "name" for "Person"
Person(name=42)  # E: [arg-type] Argument "name" to "Person" has incompatible type "int"; expected "str"
Person("Ada")  # E: [call-arg] Too many positional arguments for "Person"
p.name = None  # E: [assignment] (expression has type "None", variable has type "str")
found = Person.objects.first()
print(found.name)  # E: [union-attr] Item "None" of "Person | None" has no attribute "name"
print(Person.objects.all()[0].nmae)  # E: [attr-defined] "Person" has no attribute "nmae"
