//! The schemas tenure serves (RFC 7643 §4 and §8.7): one table of attribute definitions that
//! validation, filtering, PATCH and the `/Schemas` discovery document all read, so what
//! discovery says is what the server does.

use serde_json::{Value, json};

/// Core User schema.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Core Group schema.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// tenure's own User extension: worker type, location, dates (written by identity providers)
/// and, returned on request only, what tenure made of the person (status, engagements).
pub const TENURE: &str = "urn:tenure:params:scim:schemas:extension:lifecycle:2.0:User";
/// List response message.
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Bulk request message.
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// Bulk response message.
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// An attribute's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Text.
    String,
    /// `true` or `false` (Entra ID also sends the strings "True" and "False").
    Boolean,
    /// An `xsd:dateTime` (RFC 3339).
    DateTime,
    /// A URI.
    Reference,
    /// Base64 data.
    Binary,
    /// An object of sub-attributes.
    Complex,
}

impl Ty {
    fn as_str(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Boolean => "boolean",
            Ty::DateTime => "dateTime",
            Ty::Reference => "reference",
            Ty::Binary => "binary",
            Ty::Complex => "complex",
        }
    }
}

/// Who may change an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Clients write it.
    ReadWrite,
    /// tenure computes it; a client's value is ignored on input and refused in PATCH.
    ReadOnly,
}

/// An attribute definition.
#[derive(Debug)]
pub struct Attr {
    /// The canonical name (matched case-insensitively).
    pub name: &'static str,
    /// The data type.
    pub ty: Ty,
    /// Multi-valued (a JSON array).
    pub multi: bool,
    /// Compared case-sensitively (otherwise values are lowercased in the index).
    pub case_exact: bool,
    /// Required on input.
    pub required: bool,
    /// Who may change it.
    pub mutability: Mutability,
    /// Unique among the server's resources (`uniqueness: server`).
    pub unique_server: bool,
    /// Returned only when `attributes` names it (RFC 7643 §7 `returned: request`).
    pub on_request: bool,
    /// The canonical values discovery lists (not enforced on input).
    pub canonical: &'static [&'static str],
    /// For a reference: the resource types it may point to.
    pub ref_types: &'static [&'static str],
    /// For a complex attribute: its sub-attributes.
    pub subs: &'static [Attr],
    /// The description discovery shows.
    pub description: &'static str,
}

const fn a(name: &'static str, ty: Ty, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        case_exact: false,
        required: false,
        mutability: Mutability::ReadWrite,
        unique_server: false,
        on_request: false,
        canonical: &[],
        ref_types: &[],
        subs: &[],
        description,
    }
}

const fn s(name: &'static str, description: &'static str) -> Attr {
    a(name, Ty::String, description)
}

const fn multi(name: &'static str, subs: &'static [Attr], description: &'static str) -> Attr {
    Attr {
        multi: true,
        subs,
        ..a(name, Ty::Complex, description)
    }
}

const fn read_only(mut x: Attr) -> Attr {
    x.mutability = Mutability::ReadOnly;
    x
}

const fn on_request(mut x: Attr) -> Attr {
    x.on_request = true;
    x
}

const fn canon(mut x: Attr, values: &'static [&'static str]) -> Attr {
    x.canonical = values;
    x
}

const fn reference(name: &'static str, types: &'static [&'static str], d: &'static str) -> Attr {
    Attr {
        case_exact: true,
        ref_types: types,
        ..a(name, Ty::Reference, d)
    }
}

const PLAIN_MULTI: &[Attr] = &[
    s("value", "The value."),
    s("display", "A human-readable name."),
    s("type", "A label for the value's function."),
    a(
        "primary",
        Ty::Boolean,
        "The primary value; true at most once.",
    ),
];
const EMAIL_SUBS: &[Attr] = &[
    s("value", "Email address."),
    s("display", "A human-readable name."),
    canon(
        s("type", "work, home or other."),
        &["work", "home", "other"],
    ),
    a(
        "primary",
        Ty::Boolean,
        "The primary address; true at most once.",
    ),
];
const PHOTO_SUBS: &[Attr] = &[
    reference("value", &["external"], "URL of the photo."),
    s("display", "A human-readable name."),
    canon(s("type", "photo or thumbnail."), &["photo", "thumbnail"]),
    a("primary", Ty::Boolean, "The primary photo."),
];
const ADDRESS_SUBS: &[Attr] = &[
    s("formatted", "The full address."),
    s("streetAddress", "Street."),
    s("locality", "City or locality."),
    s("region", "State or region."),
    s("postalCode", "Postal code."),
    s("country", "Country (ISO 3166-1 alpha-2)."),
    canon(
        s("type", "work, home or other."),
        &["work", "home", "other"],
    ),
    a("primary", Ty::Boolean, "The primary address."),
];
const GROUP_REF_SUBS: &[Attr] = &[
    read_only(s(
        "value",
        "The group's id: a group the identity provider pushed, or a tenure entitlement.",
    )),
    read_only(reference("$ref", &["Group"], "URI of the group.")),
    read_only(s("display", "The group's name.")),
    read_only(canon(
        s("type", "direct or indirect."),
        &["direct", "indirect"],
    )),
];
const NAME_SUBS: &[Attr] = &[
    s("formatted", "The full name."),
    s("familyName", "Family name."),
    s("givenName", "Given name."),
    s("middleName", "Middle name."),
    s("honorificPrefix", "Prefix, e.g. Ms."),
    s("honorificSuffix", "Suffix, e.g. III."),
];
const X509_SUBS: &[Attr] = &[
    Attr {
        case_exact: true,
        ..a("value", Ty::Binary, "DER certificate, base64.")
    },
    s("display", "A human-readable name."),
    s("type", "A label."),
    a("primary", Ty::Boolean, "The primary certificate."),
];

/// The core User attributes (RFC 7643 §4.1). `password` is left out on purpose: tenure does
/// not hold passwords, and a password sent in is ignored, never stored.
pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique_server: true,
        ..s(
            "userName",
            "Unique identifier for the user; case-insensitive.",
        )
    },
    Attr {
        subs: NAME_SUBS,
        ..a("name", Ty::Complex, "The components of the user's name.")
    },
    s("displayName", "The name displayed to end users."),
    s("nickName", "The casual name."),
    reference("profileUrl", &["external"], "The user's online profile."),
    s("title", "Job title (tenure: title)."),
    s(
        "userType",
        "Free text; Employee, Contractor or Partner (any case) also set tenure's worker type.",
    ),
    s("preferredLanguage", "Preferred language."),
    s("locale", "Locale."),
    s("timezone", "Time zone."),
    a(
        "active",
        Ty::Boolean,
        "false makes a leave in tenure; true again a rehire.",
    ),
    multi(
        "emails",
        EMAIL_SUBS,
        "Email addresses; the primary (or first work) one is tenure's email.",
    ),
    multi("phoneNumbers", PLAIN_MULTI, "Phone numbers."),
    multi("ims", PLAIN_MULTI, "Instant messaging addresses."),
    multi("photos", PHOTO_SUBS, "Photo URLs."),
    multi("addresses", ADDRESS_SUBS, "Physical addresses."),
    read_only(multi(
        "groups",
        GROUP_REF_SUBS,
        "The groups the identity provider put the user in, then the tenure entitlements it holds (read-only).",
    )),
    multi(
        "entitlements",
        PLAIN_MULTI,
        "Entitlements as the identity provider names them (stored, not acted on).",
    ),
    multi(
        "roles",
        PLAIN_MULTI,
        "Roles as the identity provider names them (stored, not acted on).",
    ),
    multi("x509Certificates", X509_SUBS, "Certificates."),
];

const MANAGER_SUBS: &[Attr] = &[
    s("value", "The manager's id (tenure: manager)."),
    reference("$ref", &["User"], "URI of the manager."),
    read_only(s("displayName", "The manager's name.")),
];

/// Enterprise User extension attributes (RFC 7643 §4.3).
pub const ENTERPRISE_ATTRS: &[Attr] = &[
    s("employeeNumber", "Employee number."),
    s("costCenter", "Cost center."),
    s("organization", "Organization."),
    s("division", "Division."),
    s("department", "Department (tenure: department)."),
    Attr {
        subs: MANAGER_SUBS,
        ..a("manager", Ty::Complex, "The user's manager.")
    },
];

const ENGAGEMENT_SUBS: &[Attr] = &[
    read_only(s("value", "Engagement id.")),
    read_only(s("client", "Client id.")),
    read_only(s("role", "Role on the engagement.")),
    read_only(s("startDate", "First day (YYYY-MM-DD).")),
    read_only(s("endDate", "Last day (YYYY-MM-DD).")),
    read_only(a("active", Ty::Boolean, "Whether the engagement is on.")),
];

/// tenure's User extension.
pub const TENURE_ATTRS: &[Attr] = &[
    canon(
        s(
            "workerType",
            "employee, contractor or partner (else taken from userType).",
        ),
        &["employee", "contractor", "partner"],
    ),
    s("location", "Office or country, matched by role templates."),
    a(
        "startDate",
        Ty::DateTime,
        "First working day (its date part, in UTC).",
    ),
    a(
        "endDate",
        Ty::DateTime,
        "Last working day, contract end (its date part, in UTC).",
    ),
    on_request(read_only(canon(
        s(
            "status",
            "Where tenure has the person: pre_hire, active, leaving, terminated.",
        ),
        &["pre_hire", "active", "leaving", "terminated"],
    ))),
    on_request(read_only(multi(
        "engagements",
        ENGAGEMENT_SUBS,
        "Client engagements (from tenure).",
    ))),
];

const MEMBER_SUBS: &[Attr] = &[
    s("value", "The member's user id (its person's id)."),
    read_only(reference("$ref", &["User"], "URI of the member.")),
    read_only(s("display", "The member's name.")),
    canon(s("type", "User (groups do not nest)."), &["User"]),
];

/// Group attributes. Groups an identity provider pushes are written with these; tenure's own
/// entitlements are listed with them too, read-only (their members follow role templates).
pub const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique_server: true,
        ..s("displayName", "The group's name, unique.")
    },
    multi(
        "members",
        MEMBER_SUBS,
        "The users in the group (for an entitlement: the people holding it).",
    ),
];

/// A resource type's schemas: the core schema first, then its extensions.
pub type Schemas = [(&'static str, &'static [Attr])];

/// The schemas of a User: the core schema, the Enterprise extension, tenure's extension.
pub const USER_SCHEMAS: [(&str, &[Attr]); 3] = [
    (USER, USER_ATTRS),
    (ENTERPRISE, ENTERPRISE_ATTRS),
    (TENURE, TENURE_ATTRS),
];

/// The schemas of a Group: the core schema alone.
pub const GROUP_SCHEMAS: [(&str, &[Attr]); 1] = [(GROUP, GROUP_ATTRS)];

/// Finds an attribute by name, case-insensitively.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|x| x.name.eq_ignore_ascii_case(name))
}

/// The attributes of `schema` among `schemas`, case-insensitively.
pub fn schema_attrs(
    schemas: &[(&'static str, &'static [Attr])],
    schema: &str,
) -> Option<(&'static str, &'static [Attr])> {
    schemas
        .iter()
        .find(|(urn, _)| urn.eq_ignore_ascii_case(schema))
        .copied()
}

fn attr_json(x: &Attr) -> Value {
    let mut v = json!({
        "name": x.name,
        "type": x.ty.as_str(),
        "multiValued": x.multi,
        "description": x.description,
        "required": x.required,
        "mutability": match x.mutability {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
        },
        "returned": if x.on_request { "request" } else { "default" },
        "uniqueness": if x.unique_server { "server" } else { "none" },
    });
    if x.ty != Ty::Complex && x.ty != Ty::Boolean {
        v["caseExact"] = json!(x.case_exact);
    }
    if !x.canonical.is_empty() {
        v["canonicalValues"] = json!(x.canonical);
    }
    if x.ty == Ty::Reference {
        v["referenceTypes"] = json!(x.ref_types);
    }
    if x.ty == Ty::Complex {
        v["subAttributes"] = Value::Array(x.subs.iter().map(attr_json).collect());
    }
    v
}

/// The `/Schemas` document of one schema.
pub fn schema_json(urn: &str, base: &str) -> Option<Value> {
    let (name, description, attrs): (&str, &str, &[Attr]) = match urn {
        USER => ("User", "User Account", USER_ATTRS),
        GROUP => ("Group", "Group", GROUP_ATTRS),
        ENTERPRISE => ("EnterpriseUser", "Enterprise User", ENTERPRISE_ATTRS),
        TENURE => (
            "TenureUser",
            "tenure lifecycle attributes of a person",
            TENURE_ATTRS,
        ),

        _ => return None,
    };
    Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{urn}") },
    }))
}

/// Every schema URN served.
pub const ALL_SCHEMAS: [&str; 4] = [USER, GROUP, ENTERPRISE, TENURE];

/// The `/ResourceTypes` document of `User` or `Group`.
pub fn resource_type_json(name: &str, base: &str) -> Option<Value> {
    let v = match name {
        "User" => json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "A person in tenure",
            "schema": USER,
            "schemaExtensions": [
                { "schema": ENTERPRISE, "required": false },
                { "schema": TENURE, "required": false },
            ],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") },
        }),
        "Group" => json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "A group the identity provider pushes, or one of tenure's entitlements (read-only)",
            "schema": GROUP,
            "schemaExtensions": [],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group") },
        }),
        _ => return None,
    };
    Some(v)
}

/// Most results one list response carries, and most operations in one bulk request.
pub const MAX_RESULTS: i64 = 1000;
/// Most operations in one bulk request.
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// Most member values one group request (POST, PUT or PATCH) may name.
pub const MAX_MEMBERS_PER_REQUEST: usize = 20_000;
/// Most members one group may hold.
pub const MAX_GROUP_MEMBERS: usize = 100_000;
/// Largest bulk request body, in bytes.
pub const MAX_BULK_PAYLOAD: usize = 1_048_576;

/// The `/ServiceProviderConfig` document: what this server does, exactly.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/tenure-iam/tenure/blob/main/docs/scim.md",
        "patch": { "supported": true },
        "bulk": { "supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_BULK_PAYLOAD },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A tenure API token with the `scim` scope, sent as `Authorization: Bearer <token>`.",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    })
}
