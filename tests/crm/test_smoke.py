def test_contact_api_round_trip(api, alice):
    # given Alice from sales
    client = api(alice)
    # when she creates a contact with a mixed-case email and a local phone number
    created = client.post(
        "/api/v1/contacts/",
        {
            "first_name": "Sara",
            "last_name": "Ahmadi",
            "email": "Sara@Example.COM",
            "phone": "0912 123 4567",
            "language": "fa",
        },
    )
    # then it is stored normalised and owned by her
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["email"] == "sara@example.com"
    assert body["phone"] == "+989121234567"
    assert body["owner"] == alice.pk
    assert body["source"] == "api"
    listed = client.get("/api/v1/contacts/", {"q": "ahmadi"}).json()
    assert [c["id"] for c in listed["results"]] == [body["id"]]
