//! The SDK's API split by topic; each file adds its methods to [`ChartLink`](crate::ChartLink).

mod connect;
mod patients;
mod records;
