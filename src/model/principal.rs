//! Who owns data and who is asking: [`Principal`] and [`Caller`].
//!
//! Every webhook belongs to the principal that created it, and its events, deliveries and
//! subscriptions with it. A principal is named by how it authenticated:
//! - `local`: the person running the server: stdio, loopback HTTP without credentials, and
//!   the operator's `--auth-token`; rows of stores made before principals existed are its;
//! - `token:<NAME>`: a line of `--auth-tokens-file`;
//! - `oauth:<issuer>#<sub>`: an OAuth access token's issuer and subject.
//!
//! A [`Caller`] is a principal seeing only its own, or the operator (the CLI on the store, the
//! dashboard and MCP calls with the operator's token), who sees everyone's.

use serde::Serialize;

/// The owner of a webhook and of everything that came through it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// The name of the local principal (what the store's `owner` columns default to).
    pub const LOCAL: &'static str = "local";

    pub fn local() -> Principal {
        Principal(Self::LOCAL.into())
    }

    /// A principal by its full name (`token:alice`, `oauth:https://id.example.com#123`).
    pub fn new(name: impl Into<String>) -> Principal {
        Principal(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Principal {
    fn from(s: String) -> Self {
        Principal(s)
    }
}

/// Who is asking: what it creates is its principal's; it sees its principal's own rows, or
/// every row when it is the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    principal: Principal,
    operator: bool,
}

impl Caller {
    /// The local principal without the operator's view (stdio, loopback HTTP without
    /// credentials).
    pub fn local() -> Caller {
        Caller::of(Principal::local())
    }

    /// The operator: the local principal, seeing everyone's rows.
    pub fn operator() -> Caller {
        Caller {
            principal: Principal::local(),
            operator: true,
        }
    }

    /// `principal`, seeing only its own.
    pub fn of(principal: Principal) -> Caller {
        Caller {
            principal,
            operator: false,
        }
    }

    /// The owner of what this caller creates.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn is_operator(&self) -> bool {
        self.operator
    }

    /// Whether this caller may see and change a row of `owner`.
    pub fn sees(&self, owner: &Principal) -> bool {
        self.operator || *owner == self.principal
    }

    /// The owner reads are limited to: `None` for the operator (everyone's).
    pub fn only(&self) -> Option<&Principal> {
        (!self.operator).then_some(&self.principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_sees_its_own_and_the_operator_everything() {
        let alice = Caller::of(Principal::new("token:alice"));
        assert!(alice.sees(&Principal::new("token:alice")));
        assert!(!alice.sees(&Principal::local()));
        assert_eq!(alice.only(), Some(&Principal::new("token:alice")));
        assert!(!Caller::local().sees(&Principal::new("token:alice")));
        assert!(Caller::operator().sees(&Principal::new("token:alice")));
        assert_eq!(Caller::operator().only(), None);
        assert_eq!(Caller::operator().principal(), &Principal::local());
    }
}
