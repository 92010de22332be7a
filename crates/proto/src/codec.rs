//! The codec of every Refer stub: prost's, except that a request that does
//! not decode (a string field holding bytes that are not UTF-8, a truncated
//! field) answers INVALID_ARGUMENT naming the message and field, as every
//! other bad input does, instead of prost's INTERNAL.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

#[derive(Debug, Clone)]
pub struct ReferCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Default for ReferCodec<T, U> {
    fn default() -> Self {
        Self {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for ReferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ReferDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReferDecoder {
            prost: self.prost.decoder(),
            _pd: PhantomData,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReferDecoder<U> {
    prost: ProstDecoder<U>,
    _pd: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for ReferDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // prost's message names the message and field (`PersonRequest.case_reference:
        // invalid string value: data is not UTF-8 encoded`).
        self.prost
            .decode(buf)
            .map_err(|status| Status::invalid_argument(status.message().to_owned()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.prost.buffer_settings()
    }
}
