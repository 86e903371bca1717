// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.0;
contract Token {
    mapping(address => uint256) public balanceOf;
    constructor(address holder) { balanceOf[holder] = 1e24; }
    function transfer(address to, uint256 v) external returns (bool) {
        require(balanceOf[msg.sender] >= v, "balance");
        balanceOf[msg.sender] -= v; balanceOf[to] += v; return true;
    }
}
