from orchestrator import names


def test_strip_removes_uuid_dashes():
    assert names.strip("0b6f3c1e-9a47-4d2b-8f31-5c2e7a9d4410") == (
        "0b6f3c1e9a474d2b8f315c2e7a9d4410"
    )


def test_resource_names_follow_cyanprint():
    template = "0b6f3c1e-9a47-4d2b-8f31-5c2e7a9d4410"
    assert names.template_volume(template) == "cyan-0b6f3c1e9a474d2b8f315c2e7a9d4410"
    assert names.session_volume(template, "Qx7Lm2Pa9Z") == (
        "cyan-0b6f3c1e9a474d2b8f315c2e7a9d4410-Qx7Lm2Pa9Z"
    )
    assert names.session_container("processor", "7e2d-9c41", "s-1") == (
        "cyan-processor-7e2d9c41-s-1"
    )
    assert names.template_container("ab-cd") == "cyan-template-abcd"
    assert names.resolver_container("ab-cd") == "cyan-resolver-abcd"


def test_labels_carry_session_and_kind():
    labels = names.labels("processor", "p-1", "sess-1")
    assert labels == {
        "cyanprint.dev": "true",
        "cyanprint.kind": "processor",
        "cyanprint.id": "p-1",
        "cyanprint.session": "sess-1",
    }
    assert "cyanprint.session" not in names.labels("template", "t-1")


def test_safe_fragments():
    for good in ["Qx7Lm2Pa9Z", "a", "with-dash_and.dot", "0" * 64]:
        assert names.is_safe(good), good
    for bad in ["", "-leading", ".hidden", "a/b", "a b", "x;rm", "0" * 65, "ä", "a\n"]:
        assert not names.is_safe(bad), bad
