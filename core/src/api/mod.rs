//! The SDK's API split by topic; each file adds its methods to [`ChartLink`](crate::ChartLink).

mod connect;
mod export;
mod patients;
mod records;

pub use export::ExportFormat;
pub use records::{AnyRecord, MAX_PAGE, Page, RecordQuery};
