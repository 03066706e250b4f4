//! Every unknown key of the file in one pass, each with its YAML path and line.
//!
//! serde's `deny_unknown_fields` stops at the first misspelt key, so a file
//! with three typos needed three runs of `check-config`. This wrapper sits
//! between the YAML deserializer and the raw structs: where a struct is read,
//! it takes each key with its location, passes the struct only the keys it
//! knows, and records the others (skipping their values) instead of failing.
//! The structs keep `deny_unknown_fields`, which now never fires in `parse`,
//! and stay the single statement of the file's shape: the known keys are the
//! ones serde hands `deserialize_struct`.
//!
//! Everything else is forwarded untouched, so values are read exactly as the
//! YAML deserializer reads them. Enums are forwarded unwrapped (the file has
//! none holding keys).

use std::cell::RefCell;

use serde::de::{
    self, value::StringDeserializer, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny,
    IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use super::validate::ConfigError;

/// The unknown keys found, in document order.
pub(super) type Found = RefCell<Vec<ConfigError>>;

/// Wraps `de`, whose value sits at `path` (empty for the whole file).
pub(super) fn wrap<D>(de: D, found: &Found) -> Keys<'_, D> {
    Keys {
        de,
        path: String::new(),
        found,
    }
}

pub(super) struct Keys<'f, D> {
    de: D,
    path: String,
    found: &'f Found,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The message serde itself gives for an unknown field, plus the place in the text.
fn unknown(key: &str, fields: &'static [&'static str], at: serde_saphyr::Location) -> String {
    let msg = <de::value::Error as de::Error>::unknown_field(key, fields).to_string();
    if at.line() == 0 {
        msg
    } else {
        format!("{msg} (line {}, column {})", at.line(), at.column())
    }
}

macro_rules! forward_wrapped {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.de.$method(Wrap::new(visitor, self.path, self.found, None))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Keys<'_, D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_ignored_any(v)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_unit_struct(name, Wrap::new(v, self.path, self.found, None))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_newtype_struct(name, Wrap::new(v, self.path, self.found, None))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_tuple(len, Wrap::new(v, self.path, self.found, None))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.de
            .deserialize_tuple_struct(name, len, Wrap::new(v, self.path, self.found, None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_struct(
            name,
            fields,
            Wrap::new(v, self.path, self.found, Some(fields)),
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_enum(name, variants, v)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor that wraps what it is handed (maps, lists, optional values).
struct Wrap<'f, V> {
    v: V,
    path: String,
    found: &'f Found,
    /// The known keys, when the visitor reads a struct.
    fields: Option<&'static [&'static str]>,
}

impl<'f, V> Wrap<'f, V> {
    fn new(v: V, path: String, found: &'f Found, fields: Option<&'static [&'static str]>) -> Self {
        Wrap {
            v,
            path,
            found,
            fields,
        }
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, x: $ty) -> Result<Self::Value, E> {
            self.v.$method(x)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.v.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.v.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.v.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.v.visit_some(Keys {
            de: d,
            path: self.path,
            found: self.found,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.v.visit_newtype_struct(Keys {
            de: d,
            path: self.path,
            found: self.found,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.v.visit_seq(Seq {
            inner: seq,
            path: self.path,
            found: self.found,
            index: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.v.visit_map(Map {
            inner: map,
            path: self.path,
            found: self.found,
            fields: self.fields,
            key: String::new(),
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.v.visit_enum(data)
    }
}

/// A value at a known path.
struct Seed<'f, S> {
    seed: S,
    path: String,
    found: &'f Found,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Keys {
            de: d,
            path: self.path,
            found: self.found,
        })
    }
}

struct Seq<'f, A> {
    inner: A,
    path: String,
    found: &'f Found,
    index: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        self.inner.next_element_seed(Seed {
            seed,
            path,
            found: self.found,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct Map<'f, A> {
    inner: A,
    path: String,
    found: &'f Found,
    fields: Option<&'static [&'static str]>,
    /// The key whose value comes next.
    key: String,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(fields) = self.fields else {
            // A map that is not a struct has no unknown keys; its values keep the map's path.
            self.key.clear();
            return self.inner.next_key_seed(seed);
        };
        loop {
            let Some(key) = self.inner.next_key::<serde_saphyr::Spanned<String>>()? else {
                return Ok(None);
            };
            if fields.contains(&key.value.as_str()) {
                self.key.clone_from(&key.value);
                let de: StringDeserializer<A::Error> = key.value.into_deserializer();
                return seed.deserialize(de).map(Some);
            }
            self.found.borrow_mut().push(ConfigError::new(
                join(&self.path, &key.value),
                unknown(&key.value, fields, key.referenced),
            ));
            self.inner.next_value::<IgnoredAny>()?;
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let path = if self.key.is_empty() {
            self.path.clone()
        } else {
            join(&self.path, &self.key)
        };
        self.inner.next_value_seed(Seed {
            seed,
            path,
            found: self.found,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}
