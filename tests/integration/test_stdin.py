"""input() and getpass over the stdin channel."""


def test_input_with_allow_stdin_requests_and_returns_reply(kernel):
    seen = []

    def answer(content):
        seen.append(content)
        return "Ada"

    x = kernel.execute("name = input('name? ')\nname", stdin_handler=answer).ok()
    assert len(seen) == 1
    assert seen[0]["prompt"] == "name? "
    assert seen[0]["password"] is False
    assert x.text == "'Ada'"
    assert [m["msg_type"] for m in x.stdin] == ["input_request"]


def test_getpass_requests_password(kernel):
    seen = []

    def answer(content):
        seen.append(content)
        return "s3cret"

    x = kernel.execute("import getpass\ngetpass.getpass('pw: ')", stdin_handler=answer).ok()
    assert [c["password"] for c in seen] == [True]
    assert seen[0]["prompt"] == "pw: "
    assert x.text == "'s3cret'"


def test_input_without_allow_stdin_raises_clear_error(kernel):
    x = kernel.execute("input('never answered: ')", allow_stdin=False, stop_on_error=False)
    assert x.status == "error", x.describe()
    said = (x.content["ename"] + " " + x.content["evalue"]).lower()
    assert "stdin" in said or "input" in said, x.content
    assert x.stdin == [], "no input_request when the frontend cannot answer"
    assert kernel.execute("'still serving'").ok().text == "'still serving'"
