//! Generated code for Refer's gRPC contracts (see `proto/`).
#![forbid(unsafe_code)]
#![allow(clippy::all)]

pub mod codec;

pub mod common {
    pub mod v1 {
        tonic::include_proto!("refer.common.v1");
    }
}
pub mod capacity {
    pub mod v1 {
        tonic::include_proto!("refer.capacity.v1");
    }
}
pub mod donations {
    pub mod v1 {
        tonic::include_proto!("refer.donations.v1");
    }
}
pub mod intake {
    pub mod v1 {
        tonic::include_proto!("refer.intake.v1");
    }
}
pub mod matcher {
    pub mod v1 {
        tonic::include_proto!("refer.matcher.v1");
    }
}

/// The encoded descriptors of every Refer service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("refer_descriptor");
