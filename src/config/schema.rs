//! The layout of the config file, read from the `Deserialize` impls of the raw structs, so the
//! key names and their nesting are written once, in `raw.rs`.
//!
//! A tracing deserializer plays the part of a YAML document that contains every key. The
//! derived impls request each struct with its field names, and each field with the type it
//! expects (text, a boolean, a list, a mapping, another struct). The tracer records those
//! requests as a [`Shape`] and returns a placeholder value for each, so tracing continues into
//! the next field.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// The name under which `Spanned<T>` requests a newtype struct.
/// NOTE: serde-saphyr 2.2 keeps this name and [`SPANNED_MARKER`] private. If a later version
/// changes either, the `Spanned` fields of the raw structs trace as [`Shape::Any`], and the
/// test `layout_traced_from_raw_structs` fails.
const SPANNED_NEWTYPE: &str = "__yaml_spanned";
/// The first key of the map through which `Spanned<T>` reads its value and locations.
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

/// Nesting deeper than this is traced as [`Shape::Any`], which bounds a recursive type.
const MAX_DEPTH: usize = 32;

/// The value a config position expects.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Shape {
    /// A mapping with a fixed set of keys.
    Struct(Vec<Field>),
    /// One of a fixed set of names, written alone or as the only key of a mapping.
    Enum(&'static [&'static str]),
    /// A mapping with keys chosen by the user, such as header names.
    Map(Box<Shape>),
    /// A list.
    Seq(Box<Shape>),
    /// A value that may be null or left out.
    Optional(Box<Shape>),
    /// A scalar read as text.
    Text,
    /// A boolean.
    Bool,
    /// A number.
    Number,
    /// Anything the tracer cannot see into, such as an untagged enum.
    Any,
}

/// One key of a [`Shape::Struct`].
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Field {
    /// The key as written in YAML.
    pub(super) name: &'static str,
    /// The value it expects.
    pub(super) shape: Shape,
    /// Whether leaving the key out is an error.
    pub(super) required: bool,
}

impl Shape {
    /// Returns the shape of `T`, traced from its `Deserialize` impl.
    pub(super) fn of<T: DeserializeOwned>() -> Shape {
        let mut shape = trace::<T>(&[]);
        mark_required::<T>(&mut shape, &mut Vec::new());
        shape
    }
}

/// Traces `T` with the field at `omit` (a path of struct keys from the root) left out.
fn trace<T: DeserializeOwned>(omit: &[&'static str]) -> Shape {
    let mut shape = Shape::Any;
    let tracer = Tracer {
        slot: &mut shape,
        path: Vec::new(),
        omit,
    };
    // An error only means that some part was not traced; that part stays `Shape::Any`.
    let _ = T::deserialize(tracer);
    shape
}

/// Marks each field whose absence makes `T` fail with "missing field". A field with a default
/// or of an `Option` type is not required. Each field is tested by tracing `T` again without
/// it, because the derived code decides this only when the field is missing.
fn mark_required<T: DeserializeOwned>(shape: &mut Shape, path: &mut Vec<&'static str>) {
    match shape {
        Shape::Struct(fields) => {
            for field in fields {
                path.push(field.name);
                let mut missing = None;
                let mut shape = Shape::Any;
                let tracer = Tracer {
                    slot: &mut shape,
                    path: Vec::new(),
                    omit: path,
                };
                if let Err(TraceError::MissingField(name)) = T::deserialize(tracer) {
                    missing = Some(name);
                }
                field.required = missing == Some(field.name);
                mark_required::<T>(&mut field.shape, path);
                path.pop();
            }
        }
        Shape::Seq(inner) | Shape::Optional(inner) | Shape::Map(inner) => {
            mark_required::<T>(inner, path);
        }
        Shape::Enum(_) | Shape::Text | Shape::Bool | Shape::Number | Shape::Any => {}
    }
}

#[derive(Debug, thiserror::Error)]
enum TraceError {
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("{0}")]
    Other(String),
}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        TraceError::Other(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        TraceError::MissingField(field)
    }
}

/// A deserializer that records what is asked of it in `slot`.
struct Tracer<'a> {
    slot: &'a mut Shape,
    /// The struct keys from the root to this position.
    path: Vec<&'static str>,
    /// A field to leave out, as a path of struct keys from the root.
    omit: &'a [&'static str],
}

impl<'a> Tracer<'a> {
    /// Returns a tracer for a value outside the config layout, such as a location.
    fn detached(slot: &'a mut Shape) -> Tracer<'a> {
        Tracer {
            slot,
            path: Vec::new(),
            omit: &[],
        }
    }

    fn child<'b>(&self, slot: &'b mut Shape, key: Option<&'static str>) -> Tracer<'b>
    where
        'a: 'b,
    {
        let mut path = self.path.clone();
        path.extend(key);
        Tracer {
            slot,
            path,
            omit: self.omit,
        }
    }

    fn too_deep(&self) -> bool {
        self.path.len() >= MAX_DEPTH
    }
}

macro_rules! trace_number {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
                *self.slot = Shape::Number;
                visitor.$visit($value)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Any;
        visitor.visit_str("")
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Bool;
        visitor.visit_bool(false)
    }

    trace_number! {
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_i128 => visit_i128(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_u128 => visit_u128(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Text;
        visitor.visit_char('x')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Text;
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Any;
        visitor.visit_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let mut inner = Shape::Any;
        let result = visitor.visit_some(self.child(&mut inner, None));
        *self.slot = Shape::Optional(Box::new(inner));
        result
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Any;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if name == SPANNED_NEWTYPE {
            visitor.visit_newtype_struct(SpannedTracer(self))
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        if self.too_deep() {
            return Err(de::Error::custom("nested too deep"));
        }
        let mut element = Shape::Any;
        let result = visitor.visit_seq(OneElement(Some(self.child(&mut element, None))));
        *self.slot = Shape::Seq(Box::new(element));
        result
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        // Tuples occur only inside serde-saphyr's `Location` (its span), never as config
        // values.
        *self.slot = Shape::Any;
        visitor.visit_seq(Placeholders(len))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        if self.too_deep() {
            return Err(de::Error::custom("nested too deep"));
        }
        let mut value = Shape::Any;
        let result = visitor.visit_map(OneEntry {
            tracer: Some(self.child(&mut value, None)),
            key_given: false,
        });
        *self.slot = Shape::Map(Box::new(value));
        result
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if self.too_deep() {
            return Err(de::Error::custom("nested too deep"));
        }
        let mut shapes = vec![Shape::Any; fields.len()];
        let result = visitor.visit_map(StructFields {
            parent: &self,
            fields,
            shapes: &mut shapes,
            next: 0,
        });
        let fields = fields
            .iter()
            .zip(shapes)
            .map(|(&name, shape)| Field {
                name,
                shape,
                required: false,
            })
            .collect();
        *self.slot = Shape::Struct(fields);
        result
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        *self.slot = Shape::Enum(variants);
        let Some(&first) = variants.first() else {
            return Err(de::Error::custom("an enum without variants"));
        };
        visitor.visit_enum(FirstVariant(first))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_unit(visitor)
    }
}

/// Feeds a derived struct visitor every field but the omitted one, tracing each value.
struct StructFields<'t, 'a> {
    parent: &'t Tracer<'a>,
    fields: &'static [&'static str],
    shapes: &'t mut [Shape],
    next: usize,
}

impl StructFields<'_, '_> {
    fn is_omitted(&self, field: &'static str) -> bool {
        self.omit_path().is_some_and(|path| path == [field])
    }

    /// Returns what remains of the omitted path below this struct, if it passes through it.
    fn omit_path(&self) -> Option<&[&'static str]> {
        self.parent.omit.strip_prefix(self.parent.path.as_slice())
    }
}

impl<'de> de::MapAccess<'de> for StructFields<'_, '_> {
    type Error = TraceError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        while let Some(&field) = self.fields.get(self.next) {
            if !self.is_omitted(field) {
                return seed.deserialize(field.into_deserializer()).map(Some);
            }
            self.next += 1;
        }
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        let index = self.next;
        self.next += 1;
        let field = self.fields[index];
        seed.deserialize(self.parent.child(&mut self.shapes[index], Some(field)))
    }
}

/// A list of one traced element.
struct OneElement<'a>(Option<Tracer<'a>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = TraceError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        self.0
            .take()
            .map(|tracer| seed.deserialize(tracer))
            .transpose()
    }
}

/// A list of `len` elements, each traced into a shape that is thrown away.
struct Placeholders(usize);

impl<'de> de::SeqAccess<'de> for Placeholders {
    type Error = TraceError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        if self.0 == 0 {
            return Ok(None);
        }
        self.0 -= 1;
        seed.deserialize(Tracer::detached(&mut Shape::Any))
            .map(Some)
    }
}

/// A mapping of one entry with an empty key and a traced value.
struct OneEntry<'a> {
    tracer: Option<Tracer<'a>>,
    key_given: bool,
}

impl<'de> de::MapAccess<'de> for OneEntry<'_> {
    type Error = TraceError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        if self.key_given || self.tracer.is_none() {
            return Ok(None);
        }
        self.key_given = true;
        seed.deserialize(Tracer::detached(&mut Shape::Any))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        match self.tracer.take() {
            Some(tracer) => seed.deserialize(tracer),
            None => Err(de::Error::custom("value requested twice")),
        }
    }
}

/// The first variant of an enum, with a traced payload.
struct FirstVariant(&'static str);

impl<'de> de::EnumAccess<'de> for FirstVariant {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), TraceError> {
        let variant = seed.deserialize(self.0.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for FirstVariant {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        Ok(())
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, TraceError> {
        seed.deserialize(Tracer::detached(&mut Shape::Any))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, TraceError> {
        Err(de::Error::custom("tuple variants are not traced"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, TraceError> {
        Err(de::Error::custom("struct variants are not traced"))
    }
}

/// The deserializer that `Spanned<T>` receives: a map of the marker, the traced value and two
/// placeholder locations, as serde-saphyr's own deserializer produces it.
struct SpannedTracer<'a>(Tracer<'a>);

impl<'de> de::Deserializer<'de> for SpannedTracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_map(SpannedFields {
            tracer: Some(self.0),
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct SpannedFields<'a> {
    tracer: Option<Tracer<'a>>,
    next: usize,
}

const SPANNED_KEYS: [&str; 4] = [SPANNED_MARKER, "value", "referenced", "defined"];

impl<'de> de::MapAccess<'de> for SpannedFields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        SPANNED_KEYS
            .get(self.next)
            .map(|key| seed.deserialize((*key).into_deserializer()))
            .transpose()
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        let key = SPANNED_KEYS[self.next];
        self.next += 1;
        match key {
            "value" => match self.tracer.take() {
                Some(tracer) => seed.deserialize(tracer),
                None => Err(de::Error::custom("value requested twice")),
            },
            SPANNED_MARKER => seed.deserialize(().into_deserializer()),
            _ => {
                // A location: line, column and span, all traced as numbers.
                seed.deserialize(Tracer::detached(&mut Shape::Any))
            }
        }
    }
}
