"""Conformance suite: the official Microsoft Graph Python SDK (msgraph-sdk, Kiota) against the
Tenure sandbox, through the operations Tenure's kinds use and the gaps of issue 17. Each check
asserts Graph's documented behaviour; any divergence fails the run (exit status 1).

Usage: python suite.py http://127.0.0.1:PORT   (driven by crates/sandbox/tests/graph_sdk.rs)

The sandbox speaks plain http, and azure-identity's credentials insist on https, so the token
comes from the sandbox's token endpoint (client credentials, as Tenure gets it) and reaches the
SDK through a static-token AccessTokenProvider: Kiota's documented extension point.
"""

import asyncio
import sys
import traceback
import uuid

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.phone_authentication_method import PhoneAuthenticationMethod
from msgraph.generated.models.authentication_phone_type import AuthenticationPhoneType
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.user import User
from msgraph.generated.users.item.managed_devices.item.wipe.wipe_post_request_body import (
    WipePostRequestBody,
)
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody,
)
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
    SendMailPostRequestBody,
)
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.generated.groups.item.members.members_request_builder import (
    MembersRequestBuilder,
)
from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (
    RoleAssignmentsRequestBuilder,
)
from msgraph_core.tasks.page_iterator import PageIterator

DOMAIN = "contoso.example"


class StaticToken(AccessTokenProvider):
    """A bearer token obtained beforehand (the sandbox's token endpoint is plain http)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])


class Suite:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.AsyncClient(timeout=30)
        self.failures: list[str] = []
        self.passed = 0

    async def token(self) -> str:
        r = await self.http.post(
            f"{self.base}/login.microsoftonline.com/{DOMAIN}/oauth2/v2.0/token",
            data={
                "client_id": "tenure-sandbox",
                "client_secret": "sandbox-secret",
                "scope": "https://graph.microsoft.com/.default",
                "grant_type": "client_credentials",
            },
        )
        r.raise_for_status()
        return r.json()["access_token"]

    async def client(self, version: str = "v1.0") -> GraphServiceClient:
        auth = BaseBearerTokenAuthenticationProvider(StaticToken(await self.token()))
        adapter = GraphRequestAdapter(auth)
        adapter.base_url = f"{self.base}/graph.microsoft.com/{version}"
        return GraphServiceClient(request_adapter=adapter)

    async def control(self, method: str, path: str, body=None):
        r = await self.http.request(method, f"{self.base}{path}", json=body)
        r.raise_for_status()
        return r.json()

    async def run(self, name, check) -> None:
        try:
            await check()
            self.passed += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the run fails
            self.failures.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}")


async def expect_error(call, status: int, code: str) -> ODataError:
    """The call must fail with an ODataError of this status and code (parsed by the SDK)."""
    try:
        await call
    except ODataError as e:
        assert e.response_status_code == status, f"status {e.response_status_code} != {status}"
        assert e.error is not None, "the error body did not parse as an OData error"
        assert e.error.code == code, f"code {e.error.code!r} != {code!r}: {e.error.message}"
        assert e.error.inner_error is not None and e.error.inner_error.request_id, "no innerError.request-id"
        headers = {k.lower(): v for k, v in (e.response_headers or {}).items()}
        assert headers.get("request-id"), "no request-id response header"
        assert headers.get("client-request-id"), "no client-request-id response header"
        return e
    except APIError as e:
        raise AssertionError(f"not parseable as an OData error: {e}") from e
    raise AssertionError(f"expected {status} {code}, the call succeeded")


def eventual(**query) -> RequestConfiguration:
    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**query)
    )
    config.headers.add("ConsistencyLevel", "eventual")
    return config


def users_query(**query) -> RequestConfiguration:
    return RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**query)
    )


def new_user(local: str, usage_location=None) -> User:
    return User(
        account_enabled=True,
        display_name=local.replace(".", " ").title(),
        mail_nickname=local,
        user_principal_name=f"{local}@{DOMAIN}",
        usage_location=usage_location,
        password_profile=PasswordProfile(
            force_change_password_next_sign_in=True, password="Str0ng!Passw0rd"
        ),
    )


async def main(base: str) -> int:
    s = Suite(base)
    await s.control("POST", "/_sandbox/reset")
    g = await s.client()

    async def users_crud():
        created = await g.users.post(new_user("sdk.crud", "AU"))
        assert created.id and created.user_principal_name == f"sdk.crud@{DOMAIN}"
        # The SDK sends @odata.type in every PATCH body; Graph accepts it.
        await g.users.by_user_id(created.id).patch(
            User(job_title="Engineer", account_enabled=False, business_phones=["+61 2 5550 1234"])
        )
        got = await g.users.by_user_id(created.id).get(
            request_configuration=RequestConfiguration(
                query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                    select=["id", "jobTitle", "accountEnabled", "businessPhones"]
                )
            )
        )
        assert got.job_title == "Engineer" and got.account_enabled is False
        assert got.business_phones == ["+61 2 5550 1234"]
        # JSON null clears a property (the SDK leaves a None attribute out; additional_data
        # sends null), as `entra.update_user`'s `clear` does.
        await g.users.by_user_id(created.id).patch(User(additional_data={"jobTitle": None}))
        got = await g.users.by_user_id(created.id).get(
            request_configuration=RequestConfiguration(
                query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                    select=["id", "jobTitle"]
                )
            )
        )
        assert got.job_title is None
        await expect_error(
            g.users.by_user_id(created.id).patch(User(additional_data={"displayName": None})),
            400,
            "Request_BadRequest",
        )
        # UPN rename, then read by the new UPN.
        await g.users.by_user_id(created.id).patch(User(user_principal_name=f"sdk.renamed@{DOMAIN}"))
        renamed = await g.users.by_user_id(f"sdk.renamed@{DOMAIN}").get()
        assert renamed.id == created.id
        await g.users.by_user_id(created.id).delete()
        await expect_error(g.users.by_user_id(created.id).get(), 404, "Request_ResourceNotFound")

    async def errors():
        await g.users.post(new_user("sdk.dup"))
        e = await expect_error(g.users.post(new_user("sdk.dup")), 400, "Request_BadRequest")
        assert e.error.details and e.error.details[0].code == "ObjectConflict"
        assert e.error.details[0].target == "userPrincipalName"
        await expect_error(g.users.by_user_id(f"nobody@{DOMAIN}").get(), 404, "Request_ResourceNotFound")
        # $top above 999 and unknown $select properties are refused.
        await expect_error(g.users.get(users_query(top=1000)), 400, "Request_BadRequest")
        await expect_error(g.users.get(users_query(select=["nonsense"])), 400, "Request_BadRequest")
        # A route Graph has and the sandbox does not simulate still answers a Graph error.
        unknown = g.users.with_url(f"{s.base}/graph.microsoft.com/v1.0/noSuchSegment")
        await expect_error(unknown.get(), 400, "BadRequest")

    async def paging():
        first = await g.users.get(users_query(top=5, select=["id", "userPrincipalName"]))
        assert len(first.value) == 5 and first.odata_next_link
        seen = []
        it = PageIterator(first, g.request_adapter)
        await it.iterate(lambda u: seen.append(u.id) or True)
        state = await s.control("GET", "/_sandbox/state")
        contoso = next(t for t in state["tenants"] if t["id"] == "contoso")
        assert len(seen) == len(set(seen)) == len(contoso["users"]), (len(seen), len(contoso["users"]))

    async def advanced_queries():
        await expect_error(g.users.get(users_query(search='"displayName:megan"')), 400, "Request_UnsupportedQuery")
        await expect_error(
            g.users.get(users_query(filter=f"endswith(mail,'@{DOMAIN}')")), 400, "Request_UnsupportedQuery"
        )
        found = await g.users.get(eventual(search='"displayName:megan"', count=True))
        assert [u.display_name for u in found.value] == ["Megan Bowen"], [u.display_name for u in found.value]
        assert found.odata_count == 1
        ordered = await g.users.get(users_query(orderby=["displayName"], top=999, select=["displayName"]))
        names = [u.display_name for u in ordered.value]
        assert names == sorted(names, key=str.lower)

    async def groups_and_members():
        groups = await g.groups.get()
        sales = next(x for x in groups.value if x.display_name == "Sales")
        user = await g.users.post(new_user("sdk.member"))
        ref = ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{user.id}")
        await g.groups.by_group_id(sales.id).members.ref.post(ref)
        e = await expect_error(g.groups.by_group_id(sales.id).members.ref.post(ref), 400, "Request_BadRequest")
        assert "already exist" in e.error.message
        page = await g.groups.by_group_id(sales.id).members.get(
            RequestConfiguration(
                query_parameters=MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(top=1)
            )
        )
        assert len(page.value) == 1 and page.odata_next_link, "members honour $top and page"
        groups_of = await g.users.by_user_id(user.id).member_of.graph_group.get()
        assert [x.display_name for x in groups_of.value] == ["Sales"]
        transitive = await g.users.by_user_id(user.id).transitive_member_of.get()
        assert [x.id for x in transitive.value] == [sales.id]
        await g.groups.by_group_id(sales.id).members.by_directory_object_id(user.id).ref.delete()
        await expect_error(
            g.groups.by_group_id(sales.id).members.by_directory_object_id(user.id).ref.delete(),
            404,
            "Request_ResourceNotFound",
        )

    async def licences():
        skus = await g.subscribed_skus.get()
        spb = next(x for x in skus.value if x.sku_part_number == "SPB")
        user = await g.users.post(new_user("sdk.licence"))
        body = AssignLicensePostRequestBody(add_licenses=[AssignedLicense(sku_id=spb.sku_id)], remove_licenses=[])
        await expect_error(g.users.by_user_id(user.id).assign_license.post(body), 400, "Request_BadRequest")
        await g.users.by_user_id(user.id).patch(User(usage_location="AU"))
        assigned = await g.users.by_user_id(user.id).assign_license.post(body)
        assert assigned.id == user.id
        details = await g.users.by_user_id(user.id).license_details.get()
        assert [d.sku_part_number for d in details.value] == ["SPB"]

    def mail(to: str) -> SendMailPostRequestBody:
        return SendMailPostRequestBody(
            message=Message(
                subject="Welcome",
                body=ItemBody(content_type=BodyType.Text, content="Hello"),
                to_recipients=[Recipient(email_address=EmailAddress(address=to))],
            ),
            save_to_sent_items=False,
        )

    async def send_mail():
        # The SDK writes {"Message", "SaveToSentItems"}; Graph accepts that casing.
        await g.users.by_user_id(f"megan.bowen@{DOMAIN}").send_mail.post(mail(f"alex.wilber@{DOMAIN}"))
        await expect_error(
            g.users.by_user_id(f"megan.bowen@{DOMAIN}").send_mail.post(mail("not-an-address")),
            400,
            "ErrorInvalidRecipients",
        )
        fresh = await g.users.post(new_user("sdk.nomailbox"))
        await expect_error(
            g.users.by_user_id(fresh.id).send_mail.post(mail(f"alex.wilber@{DOMAIN}")),
            404,
            "MailboxNotEnabledForRESTAPI",
        )

    async def deleted_items():
        user = await g.users.post(new_user("sdk.rehire"))
        await g.users.by_user_id(user.id).delete()
        deleted = await g.directory.deleted_items.graph_user.get()
        assert user.id in [d.id for d in deleted.value]
        item = await g.directory.deleted_items.by_directory_object_id(user.id).get()
        assert item.id == user.id and item.deleted_date_time is not None
        restored = await g.directory.deleted_items.by_directory_object_id(user.id).restore.post()
        assert restored.id == user.id
        back = await g.users.by_user_id(f"sdk.rehire@{DOMAIN}").get()
        assert back.id == user.id
        await g.users.by_user_id(user.id).delete()
        await g.directory.deleted_items.by_directory_object_id(user.id).delete()
        await expect_error(
            g.directory.deleted_items.by_directory_object_id(user.id).get(), 404, "Request_ResourceNotFound"
        )

    async def delta():
        page = await g.users.delta.get()
        total = len(page.value)
        while page.odata_next_link:
            page = await g.users.delta.with_url(page.odata_next_link).get()
            total += len(page.value)
        assert page.odata_delta_link and "$deltatoken=" in page.odata_delta_link
        assert total > 20
        quiet = await g.users.delta.with_url(page.odata_delta_link).get()
        assert quiet.value == [] and quiet.odata_delta_link
        changed = await g.users.post(new_user("sdk.delta"))
        await g.users.by_user_id(f"alex.wilber@{DOMAIN}").patch(User(department="Delta"))
        after = await g.users.delta.with_url(quiet.odata_delta_link).get()
        ids = {u.id for u in after.value}
        assert changed.id in ids and len(ids) == 2, ids
        await g.users.by_user_id(changed.id).delete()
        removed = await g.users.delta.with_url(after.odata_delta_link).get()
        assert [u.id for u in removed.value] == [changed.id]
        assert removed.value[0].additional_data.get("@removed") == {"reason": "changed"}

    async def tenant_reads():
        # What a people sync reads: role holders, managers expanded, a group's users.
        roles = await g.role_management.directory.role_assignments.get(
            RequestConfiguration(
                query_parameters=RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
                    select=["principalId"]
                )
            )
        )
        isaiah = await g.users.by_user_id(f"isaiah.langer@{DOMAIN}").get()
        assert isaiah.id in [a.principal_id for a in roles.value]
        page = await g.users.get(
            users_query(select=["id", "userPrincipalName"], expand=["manager($select=id,userPrincipalName)"], top=999)
        )
        assert len(page.value) <= 100, "an expanded list pages by 100 at most"
        lidia = next(u for u in page.value if u.user_principal_name == f"lidia.holloway@{DOMAIN}")
        assert lidia.manager is not None and lidia.manager.user_principal_name == f"megan.bowen@{DOMAIN}"
        groups = await g.groups.get()
        finance = next(x for x in groups.value if x.display_name == "Finance")
        members = await g.groups.by_group_id(finance.id).transitive_members.graph_user.get()
        assert members.value and all(m.user_principal_name for m in members.value)
        guests = await g.users.get(users_query(filter="userType eq 'Guest'", select=["userType"]))
        assert [u.user_type for u in guests.value] == ["Guest"]

    async def organization():
        org = await g.organization.get()
        assert len(org.value) == 1
        names = [d.name for d in org.value[0].verified_domains]
        assert DOMAIN in names and any(d.is_default for d in org.value[0].verified_domains)

    async def methods_and_devices():
        upn = f"megan.bowen@{DOMAIN}"
        phones = await g.users.by_user_id(upn).authentication.phone_methods.get()
        assert phones.value is not None
        added = await g.users.by_user_id(f"alex.wilber@{DOMAIN}").authentication.phone_methods.post(
            PhoneAuthenticationMethod(phone_number="+61 412345678", phone_type=AuthenticationPhoneType.AlternateMobile)
        )
        assert added.id == "b6332ec1-7057-4abe-9331-3d72feddfe41"
        taps = await g.users.by_user_id(upn).authentication.temporary_access_pass_methods.get()
        assert taps.value is not None
        devices = await g.users.by_user_id(upn).managed_devices.get()
        assert devices.value, "megan has devices in the default seed"
        device = await g.users.by_user_id(upn).managed_devices.by_managed_device_id(devices.value[0].id).get()
        assert device.id == devices.value[0].id
        await g.users.by_user_id(upn).managed_devices.by_managed_device_id(device.id).wipe.post(
            WipePostRequestBody(keep_enrollment_data=False, keep_user_data=False)
        )

    async def throttling():
        # A third of the requests answer 429 with Retry-After: 1; the SDK's retry handler waits
        # and retries (up to 3 times), so every call succeeds (the seed makes the run
        # repeatable).
        await s.control(
            "POST",
            "/_sandbox/faults",
            {"seed": 3, "rules": [{"path": "/graph.microsoft.com/v1.0/users", "method": "GET",
                                   "status": 429, "retry_after": 1, "rate": 0.34}]},
        )
        try:
            for _ in range(3):
                me = await g.users.by_user_id(f"megan.bowen@{DOMAIN}").get()
                assert me.display_name == "Megan Bowen"
            hits = (await s.control("GET", "/_sandbox/faults"))["hits"]
            assert hits >= 1, "no request was throttled, so the retry was not exercised"
        finally:
            await s.control("POST", "/_sandbox/faults", {"rules": []})

    async def beta_client():
        beta = await s.client("beta")
        got = await beta.users.by_user_id(f"megan.bowen@{DOMAIN}").get()
        assert got.display_name == "Megan Bowen"

    for name, check in [
        ("users: create, PATCH with @odata.type, null clears, UPN rename, businessPhones, delete", users_crud),
        ("errors: ObjectConflict, Request_ResourceNotFound, $top, $select, unknown route", errors),
        ("paging with the SDK's PageIterator", paging),
        ("advanced queries need ConsistencyLevel: eventual; $search, $count, $orderby", advanced_queries),
        ("groups: add, duplicate, members paging, memberOf/graph.group, transitiveMemberOf, remove", groups_and_members),
        ("licences: usage location required, assign, licenseDetails", licences),
        ("sendMail: SDK casing, invalid recipient, sender without mailbox", send_mail),
        ("directory/deletedItems: list, get, restore, purge", deleted_items),
        ("users/delta: pages, deltaLink, changes, @removed", delta),
        ("role assignments, $expand=manager, transitiveMembers/graph.user, guests", tenant_reads),
        ("organization: verified domains", organization),
        ("phone and TAP methods, a user's managed device and its wipe", methods_and_devices),
        ("429 with Retry-After is retried by the SDK", throttling),
        ("beta base URL", beta_client),
    ]:
        await s.run(name, check)
    await s.http.aclose()
    print(f"{s.passed} passed, {len(s.failures)} failed")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
