//! How typed values sit in the portable columns and read back: enums by name in TEXT, lists
//! and documents as JSON in TEXT. These implement sqlx's `Decode` so that a value that does not
//! read back fails with a message naming it ("unknown Verdict 'sideways'"); sqlx's `try_from`
//! field attribute would lose that text (its error formatting picks the "unprintable" case).

use serde::de::DeserializeOwned;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

use super::model::{ChannelKind, DeliveryStatus};
use crate::monitor::{RegionStatus, ServerStatus};
use crate::probe::{FailureKind, Phase, Verdict};

/// `Type` and `Decode` for enums kept by the name their `FromStr` reads.
macro_rules! decode_by_name {
    ($($t:ty),+ $(,)?) => {$(
        impl<DB: Database> Type<DB> for $t
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            String: Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let name = <String as Decode<'r, DB>>::decode(value)?;
                Ok(name.parse::<$t>()?)
            }
        }
    )+};
}

decode_by_name!(
    Verdict,
    FailureKind,
    Phase,
    ServerStatus,
    RegionStatus,
    ChannelKind,
    DeliveryStatus,
);

/// A TEXT column holding JSON that reads into `T` (a list, a tool list, a payload). Fields
/// take it with `#[sqlx(try_from = "JsonText<T>")]`; the conversion to `T` cannot fail.
#[derive(Debug)]
pub struct JsonText<T>(pub T);

impl<DB: Database, T> Type<DB> for JsonText<T>
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database, T: DeserializeOwned> Decode<'r, DB> for JsonText<T>
where
    String: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<'r, DB>>::decode(value)?;
        let value =
            serde_json::from_str(&text).map_err(|e| format!("not the JSON expected here: {e}"))?;
        Ok(JsonText(value))
    }
}

impl From<JsonText<Vec<String>>> for Vec<String> {
    fn from(v: JsonText<Vec<String>>) -> Self {
        v.0
    }
}

impl From<JsonText<Vec<(String, String)>>> for Vec<(String, String)> {
    fn from(v: JsonText<Vec<(String, String)>>) -> Self {
        v.0
    }
}

impl From<JsonText<serde_json::Value>> for serde_json::Value {
    fn from(v: JsonText<serde_json::Value>) -> Self {
        v.0
    }
}
