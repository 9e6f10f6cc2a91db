def test_company_domain_is_unique_case_insensitively(api, dave):
    client = api(dave)
    first = client.post("/api/v1/companies/", {"name": "Acme", "domain": "acme.example", "country": "gb"})
    assert first.status_code == 201, first.content
    assert first.json()["country"] == "GB"

    second = client.post("/api/v1/companies/", {"name": "Acme again", "domain": "ACME.example"})

    assert second.status_code == 400
    assert second.json() == {"domain": ["A company with this domain already exists."]}


def test_company_update_keeps_history_with_the_user(api, dave):
    client = api(dave)
    company_id = client.post("/api/v1/companies/", {"name": "Acme"}).json()["id"]

    response = client.patch(f"/api/v1/companies/{company_id}/", {"industry": "Retail"})

    assert response.status_code == 200
    from crm.models import Company

    latest = Company.objects.get(pk=company_id).history.first()
    assert latest.industry == "Retail"
    assert latest.history_user == dave


def test_support_reads_companies_but_cannot_create_them(api, bob):
    client = api(bob)
    assert client.get("/api/v1/companies/").status_code == 200
    assert client.post("/api/v1/companies/", {"name": "Nope"}).status_code == 403


def test_duplicate_contact_email_is_reported_on_the_email_field(api, dave):
    client = api(dave)
    assert client.post("/api/v1/contacts/", {"email": "reza@example.com"}).status_code == 201

    response = client.post("/api/v1/contacts/", {"email": "Reza@Example.com", "first_name": "R"})

    assert response.status_code == 400
    assert response.json() == {"email": ["A contact with this email already exists."]}
